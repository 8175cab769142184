//! The shim: the single-threaded helper process that owns one container from start to exit.
//!
//! `coracle shim <dir>` is started by [`ContainerRuntime::start`]. It forks once and the first
//! process exits at once, so the shim is nobody's child but init's (or a subreaper's): the
//! daemon may exit or crash and the container goes on. The shim then
//!
//! 1. starts its own session and becomes a child subreaper;
//! 2. removes libcontainer state a crashed shim may have left for this id;
//! 3. creates and starts the container with libcontainer (`with_systemd(false)`, state under
//!    `run_dir/containers`), its stdout and stderr on pipes;
//! 4. reports `Started` or `Failed` with the runtime's own message as one JSON line on its
//!    stdout, a pipe the caller reads, and writes `started.json`;
//! 5. copies the container's output into the CRI log file until the init process exits (in a
//!    shared PID namespace it then kills what is left in the container's cgroup);
//! 6. reads the OOM kill count of the cgroup, deletes the libcontainer state and the cgroup,
//!    unmounts the rootfs, writes `exit.json`, and exits.
//!
//! It must stay single-threaded: libcontainer forks with a raw `clone3`.
//!
//! [`ContainerRuntime::start`]: crate::ContainerRuntime::start

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::executor::ContainerExecutor;
use crate::logs::{LineSplitter, Stream};
use crate::state::{self, ExitReason, ExitStatus, ProcessId, ShimConfig, Started};
use crate::{cgroups, rootfs, RuntimeError};

/// How long the shim keeps reading output after the init process exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the shim reports to its caller on its stdout, as one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StartReport {
    /// The container runs.
    Started {
        /// The init process's pid.
        pid: i32,
        /// When it started.
        started_at: DateTime<Utc>,
    },
    /// Creating or starting failed; `message` is the runtime's own last error.
    Failed {
        /// E.g. `exec: "nosuch": executable file not found in $PATH`.
        message: String,
    },
}

/// Runs the shim for the container directory `dir`; returns the process exit code.
///
/// The process that calls this returns at once with 0 after forking; the forked shim returns
/// when the container has exited and everything is cleaned up.
pub fn run(dir: &Path) -> Result<i32, RuntimeError> {
    let config: ShimConfig =
        state::read_record(dir, state::SHIM_CONFIG)?.ok_or_else(|| RuntimeError::NotFound {
            id: dir.display().to_string(),
        })?;

    // SAFETY: the shim is single-threaded here (no async runtime, no threads spawned yet), so
    // the child may do anything after fork.
    match unsafe { fork() }.map_err(RuntimeError::sys("cannot fork the shim"))? {
        ForkResult::Parent { .. } => return Ok(0),
        ForkResult::Child => {}
    }
    nix::unistd::setsid().map_err(RuntimeError::sys("cannot start a new session"))?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(RuntimeError::sys("cannot become a subreaper"))?;
    tracing::debug!(id = %config.id, pid = std::process::id(), "shim running");

    remove_stale_state(&config);
    let (mut container, started, out, err) = match create_and_start(dir, &config) {
        Ok(ok) => ok,
        Err(message) => {
            tracing::info!(id = %config.id, %message, "container failed to start");
            cleanup_failed(&config);
            report(&StartReport::Failed { message });
            return Ok(1);
        }
    };

    // Tell the caller, then stop writing to its pipe.
    let record = Started {
        shim: ProcessId::of(std::process::id() as i32).expect("the shim itself exists"),
        init: ProcessId::of(started.0.as_raw()).unwrap_or(ProcessId {
            pid: started.0.as_raw(),
            start_ticks: 0,
        }),
        started_at: started.1,
    };
    state::write_record(dir, state::STARTED, &record)?;
    report(&StartReport::Started {
        pid: started.0.as_raw(),
        started_at: started.1,
    });
    detach_stdout();

    let wait = pump_until_exit(&config, started.0, out, err);
    let oom_kills = cgroups::oom_kills(&config.cgroups_path);
    let finished_at = Utc::now();

    // Clean up before announcing the exit, so that a caller who sees exit.json can remove.
    if let Err(err) = container
        .refresh_status()
        .and_then(|_| container.delete(true))
    {
        tracing::warn!(id = %config.id, error = %err, "cannot delete the container state");
    }
    if let Err(err) = rootfs::unmount(dir) {
        tracing::warn!(id = %config.id, error = %err, "cannot unmount the rootfs");
    }
    reap_orphans();

    let exit = exit_status(wait, oom_kills > 0, started.1, finished_at);
    tracing::info!(id = %config.id, code = exit.exit_code, reason = exit.reason.as_str(), "container exited");
    state::write_record(dir, state::EXIT, &exit)?;
    Ok(0)
}

type StartedInit = (Pid, DateTime<Utc>);

/// Creates and starts the container; an error is the runtime's message.
fn create_and_start(
    dir: &Path,
    config: &ShimConfig,
) -> Result<(Container, StartedInit, OwnedFd, OwnedFd), String> {
    let pipe =
        || pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdin = File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;

    let mut container = ContainerBuilder::new(config.id.clone(), SyscallType::default())
        .with_root_path(&config.state_root)
        .map_err(|e| error_message(&e))?
        .with_executor(ContainerExecutor)
        .with_stdin(stdin)
        .with_stdout(out_w)
        .with_stderr(err_w)
        .validate_id()
        .map_err(|e| error_message(&e))?
        .as_init(dir)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| with_init_details(error_message(&e), &err_r))?;
    // The builder has been consumed: the write ends of the pipes are closed here, so the
    // pipes report EOF once the container's processes are gone.

    if let Err(err) = container.start() {
        let message = error_message(&err);
        let _ = container.delete(true);
        return Err(message);
    }
    let started_at = Utc::now();
    let pid = container.pid().ok_or("the container has no init process")?;
    Ok((container, (pid, started_at), out_r, err_r))
}

/// The most useful text of a libcontainer error chain.
///
/// Errors raised inside the container come back wrapped as
/// `… error in executing process : <message>`; the user wants `<message>`.
fn error_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    let full = parts.join(": ");
    match full.rfind("error in executing process : ") {
        Some(at) => full[at + "error in executing process : ".len()..].to_string(),
        None => full,
    }
}

/// Adds what the container's init process logged before it failed to a generic message.
///
/// libcontainer's init process sends only the top of its error chain back (e.g. "failed
/// syscall"); it logs the details through `tracing` on its stderr, which is already the
/// container's stderr pipe.
fn with_init_details(message: String, stderr: &OwnedFd) -> String {
    let flags = nix::fcntl::OFlag::O_NONBLOCK;
    let _ = nix::fcntl::fcntl(stderr.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags));
    let mut output = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = nix::unistd::read(stderr.as_raw_fd(), &mut buf) {
        output.extend_from_slice(&buf[..n]);
    }
    let text = strip_ansi(&String::from_utf8_lossy(&output));
    tracing::debug!(output = %text.trim_end(), "init process output");
    // The first error the init process logged is the cause; later ones are consequences.
    let detail = text
        .lines()
        .find(|line| line.contains("ERROR"))
        .and_then(|line| {
            line.split_once(": ")
                .map(|(_, rest)| rest.trim().to_string())
        });
    match detail {
        Some(detail) if !message.contains(&detail) && !detail.contains(&message) => {
            format!("{message}: {detail}")
        }
        _ => message,
    }
}

/// Removes terminal colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Deletes leftovers of an earlier shim for the same id (after a crash or a reboot of the host
/// without one of /run), which libcontainer would refuse as "container already exists".
fn remove_stale_state(config: &ShimConfig) {
    let path = config.state_root.join(&config.id);
    if !path.exists() {
        return;
    }
    tracing::info!(id = %config.id, "removing stale container state");
    if let Ok(mut stale) = Container::load(path.clone()) {
        let _ = stale.delete(true);
    }
    let _ = std::fs::remove_dir_all(&path);
}

/// After a failed create or start: libcontainer state and cgroup.
fn cleanup_failed(config: &ShimConfig) {
    remove_stale_state(config);
    let _ = cgroups::remove_cgroup(&config.cgroups_path);
    reap_orphans();
}

/// Writes the report line to stdout (the caller's pipe); a vanished caller is fine.
fn report(report: &StartReport) {
    let mut line = serde_json::to_vec(report).expect("reports serialize");
    line.push(b'\n');
    let _ = std::io::stdout().write_all(&line);
    let _ = std::io::stdout().flush();
}

/// Points stdout at /dev/null, so the caller's pipe closes.
fn detach_stdout() {
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
}

/// Copies the container's output into the log until the init process has exited and its
/// pipes are drained; returns the init's wait status.
fn pump_until_exit(
    config: &ShimConfig,
    init: Pid,
    out: OwnedFd,
    err: OwnedFd,
) -> Option<WaitStatus> {
    let mut log = open_log(&config.log_path);
    let mut streams = [
        (Some(out), LineSplitter::new(Stream::Stdout)),
        (Some(err), LineSplitter::new(Stream::Stderr)),
    ];
    let pidfd = ProcessId::of(init.as_raw()).and_then(|p| p.pidfd());
    let mut status: Option<WaitStatus> = None;
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        // The init has exited when its pidfd is readable (or we could not get one).
        if status.is_none() {
            status = try_wait(init);
            if status.is_some() {
                drain_until = Some(Instant::now() + DRAIN_TIMEOUT);
                // In a shared PID namespace the init's exit leaves the other processes
                // running (and holding the output pipes); the container ends with its init.
                if config.kill_all_on_exit {
                    cgroups::kill_all(&config.cgroups_path);
                }
            }
        }
        let open = streams.iter().any(|(fd, _)| fd.is_some());
        match drain_until {
            Some(deadline) if !open || Instant::now() >= deadline => break,
            _ => {}
        }

        let mut fds: Vec<PollFd> = Vec::new();
        let mut which: Vec<usize> = Vec::new();
        for (i, (fd, _)) in streams.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        if let (Some(pidfd), None) = (&pidfd, status) {
            fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = match (drain_until, &pidfd) {
            (Some(deadline), _) => deadline.saturating_duration_since(Instant::now()),
            (None, Some(_)) => Duration::from_secs(60),
            (None, None) => Duration::from_millis(100),
        };
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        if let Err(err) = poll(&mut fds, timeout) {
            if err != nix::Error::EINTR {
                tracing::warn!(error = %err, "poll failed");
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        let ready: Vec<usize> = which
            .iter()
            .zip(fds.iter())
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| *i)
            .collect();
        drop(fds);

        for i in ready {
            let (fd, splitter) = &mut streams[i];
            let n = fd
                .as_ref()
                .map_or(Ok(0), |fd| nix::unistd::read(fd.as_raw_fd(), &mut buf));
            match n {
                Ok(0) | Err(nix::Error::EBADF) => {
                    let _ = splitter.finish(&mut log);
                    *fd = None;
                }
                Ok(n) => {
                    if let Err(err) = splitter.push(&buf[..n], &mut log) {
                        tracing::warn!(error = %err, "cannot write the container log");
                    }
                }
                Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read container output");
                    *fd = None;
                }
            }
        }
    }
    for (_, splitter) in streams.iter_mut() {
        let _ = splitter.finish(&mut log);
    }
    status
}

/// Opens the CRI log for appending (creating its directory); a sink if that fails.
fn open_log(path: &Path) -> Box<dyn Write> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(file) => Box::new(file),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot open the container log");
            Box::new(std::io::sink())
        }
    }
}

/// Reaps the init process if it has exited.
fn try_wait(init: Pid) -> Option<WaitStatus> {
    match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => None,
        Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => Some(status),
        Ok(_) => None,
        // ECHILD: not our child any more (should not happen); treat as gone.
        Err(_) => Some(WaitStatus::Exited(init, 255)),
    }
}

/// Reaps any other exited children (processes re-parented to us as subreaper).
fn reap_orphans() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// The exit record for a wait status.
fn exit_status(
    wait: Option<WaitStatus>,
    oom_killed: bool,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
) -> ExitStatus {
    let (exit_code, signal) = match wait {
        Some(WaitStatus::Exited(_, code)) => (code, None),
        Some(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let reason = if oom_killed {
        ExitReason::OomKilled
    } else if exit_code == 0 {
        ExitReason::Completed
    } else {
        ExitReason::Error
    };
    ExitStatus {
        exit_code,
        signal,
        oom_killed,
        started_at,
        finished_at,
        reason,
        message: None,
    }
}
