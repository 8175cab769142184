//! The pause process: PID 1 of a pod's shared PID namespace (`shareProcessNamespace: true`).
//!
//! The other sandbox namespaces are held by bind-mounted files alone (see [`crate::sandbox`]),
//! but a PID namespace dies with its PID 1: afterwards the kernel refuses every fork into it,
//! so a bind mount would keep only a useless husk. A pod that shares its PID namespace
//! therefore gets a long-lived process, as upstream's sandbox has its pause container.
//!
//! # Why a re-exec and not a fork of the daemon
//!
//! The holder must live as long as the sandbox, across restarts of coracle. A child forked
//! straight from the multi-threaded daemon could only ever make raw system calls, and it would
//! keep a copy-on-write image of the whole daemon and every descriptor the daemon had open at
//! that moment (`O_CLOEXEC` only acts on exec): listening sockets, the store's file, other
//! shims' report pipes, for the life of the pod. So [`start`] runs `coracle pause <dir>`, a
//! fresh single-threaded process like the shim, which
//!
//! 1. unshares a new PID namespace and forks once: the child is PID 1 of that namespace;
//! 2. (the parent, which pins the child's pid until it exits) bind-mounts the child's
//!    `/proc/<pid>/ns/pid` on `<dir>/pid`, records the child's pid and start time in
//!    `<dir>/pause.json`, reports on its stdout and exits, so the pause process is nobody's
//!    child but init's;
//! 3. (the child) starts its own session, lets go of its stdio and the directory, and reaps
//!    the zombies that the namespace's orphans leave, until `SIGTERM` or `SIGINT` (which end it,
//!    as they end upstream's pause) or `SIGKILL`.
//!
//! Containers join the namespace through `<dir>/pid`: once the pause process is gone, joining
//! fails instead of landing in a wrong namespace, which a `/proc/<pid>/ns/pid` path could do
//! after the pid was reused.
//!
//! # Guarantees
//!
//! [`is_alive`] is true only while the very process recorded lives (pid and start time), and
//! [`stop`] kills it with `SIGKILL` (which also kills every process left in the namespace, as
//! the kernel does when a namespace's init dies) and waits until it has exited.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::mount::{mount, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::state::{self, ProcessId};
use crate::RuntimeError;

/// The bind-mounted PID namespace file inside the sandbox directory.
pub const PID_NS_FILE: &str = "pid";
/// The record of the pause process inside the sandbox directory.
pub const PAUSE_RECORD: &str = "pause.json";
/// The helper's stderr, for when it fails before reporting.
pub const PAUSE_LOG: &str = "pause.log";

/// How long [`stop`] waits for the killed pause process to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What `coracle pause` reports on its stdout, as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
enum PauseReport {
    /// The pause process runs and the namespace file is mounted.
    Started {
        /// The pause process's pid (host namespace).
        pid: i32,
    },
    /// Something failed; nothing is left running.
    Failed {
        /// What.
        message: String,
    },
}

/// `pause.json`: which process is the pause process.
#[derive(Debug, Serialize, Deserialize)]
struct PauseRecord {
    pause: ProcessId,
}

/// Starts the pause process of the sandbox in `dir` as `exe pause <dir>`; returns the PID
/// namespace file containers join. Blocks until the helper has reported.
pub fn start(exe: &Path, dir: &Path) -> Result<PathBuf, RuntimeError> {
    let failed = |reason: String| RuntimeError::Pause {
        dir: dir.to_path_buf(),
        reason,
    };
    let ns_file = dir.join(PID_NS_FILE);
    std::fs::File::create(&ns_file).map_err(RuntimeError::io("cannot create", &ns_file))?;
    let log_path = dir.join(PAUSE_LOG);
    let log =
        std::fs::File::create(&log_path).map_err(RuntimeError::io("cannot create", &log_path))?;

    let mut child = Command::new(exe)
        .arg("pause")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .env("RUST_BACKTRACE", "0")
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", exe.display())))?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line);
    // The helper exits right after forking the pause process; reap it.
    let _ = child.wait();
    read.map_err(|e| failed(format!("cannot read its report: {e}")))?;

    match serde_json::from_str(line.trim()) {
        Ok(PauseReport::Started { pid }) => {
            tracing::debug!(dir = %dir.display(), pid, "pause process running");
            Ok(ns_file)
        }
        Ok(PauseReport::Failed { message }) => Err(failed(message)),
        Err(_) => {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log.lines().last().unwrap_or("no output").to_string();
            Err(failed(format!("it exited without reporting ({last})")))
        }
    }
}

/// True if the sandbox in `dir` has a pause process and it still runs.
///
/// A pause process that is exiting counts as dead: it kills the namespace's processes before
/// it becomes a zombie, and those exits must not be mistaken for crashes in a live sandbox.
pub fn is_alive(dir: &Path) -> bool {
    match state::read_record::<PauseRecord>(dir, PAUSE_RECORD) {
        Ok(Some(record)) => record.pause.is_alive() && !is_exiting(record.pause.pid),
        _ => false,
    }
}

/// True if `pid` is a zombie or has begun to exit (`PF_EXITING` in the flags of its `stat`).
fn is_exiting(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // Fields after the command name (which may hold ')') start at field 3, the state.
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
        return true;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("X");
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0
}

/// True if the sandbox in `dir` was made with a pause process (alive or not).
pub fn has_pause(dir: &Path) -> bool {
    dir.join(PAUSE_RECORD).exists()
}

/// Kills the pause process of the sandbox in `dir`, if it has one, and waits until it exited.
///
/// Its parent is init (or a subreaper), which reaps it; a zombie no longer holds the
/// namespace, so waiting for the exit is enough.
pub fn stop(dir: &Path) -> Result<(), RuntimeError> {
    let Some(record) = state::read_record::<PauseRecord>(dir, PAUSE_RECORD)? else {
        return Ok(());
    };
    // A pidfd pins the process, so a reused pid is never signalled.
    let Some(pidfd) = record.pause.pidfd() else {
        return Ok(());
    };
    // SAFETY: pidfd_send_signal with a valid pidfd, a signal number and no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<u8>(),
            0,
        )
    };
    if rc != 0 && nix::Error::last() != nix::Error::ESRCH {
        return Err(RuntimeError::Sys {
            action: format!("cannot kill the pause process {}", record.pause.pid),
            source: nix::Error::last(),
        });
    }

    // The pidfd turns readable when the process has exited.
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(STOP_TIMEOUT).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(1..) => Ok(()),
        Ok(_) => Err(RuntimeError::Sys {
            action: format!("the pause process {} did not exit", record.pause.pid),
            source: nix::Error::ETIMEDOUT,
        }),
        Err(err) => Err(RuntimeError::Sys {
            action: format!("cannot wait for the pause process {}", record.pause.pid),
            source: err,
        }),
    }
}

/// `coracle pause <dir>`: see the module docs. Must run in a single-threaded process.
///
/// The process that calls this returns 0 once the pause process runs (1 if it could not be
/// made); the pause process itself never returns.
pub fn run(dir: &Path) -> i32 {
    let report = match spawn_pause(dir) {
        Ok(pid) => PauseReport::Started { pid },
        Err(message) => PauseReport::Failed { message },
    };
    let code = match report {
        PauseReport::Started { .. } => 0,
        PauseReport::Failed { .. } => 1,
    };
    let mut line = serde_json::to_vec(&report).expect("reports serialize");
    line.push(b'\n');
    let _ = std::io::stdout().write_all(&line);
    let _ = std::io::stdout().flush();
    code
}

/// Unshares, forks the pause process, mounts its namespace and records it.
fn spawn_pause(dir: &Path) -> Result<i32, String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("cannot create a PID namespace: {e}"))?;
    // SAFETY: this helper is single-threaded (dispatched before any runtime or thread), so
    // the child may do anything after fork.
    let child = match unsafe { fork() }.map_err(|e| format!("cannot fork: {e}"))? {
        ForkResult::Child => pause(),
        ForkResult::Parent { child } => child,
    };

    // Until we exit, the child cannot be reaped, so its pid names it for sure.
    let result = record_pause(dir, child);
    if result.is_err() {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
    }
    result.map(|()| child.as_raw())
}

fn record_pause(dir: &Path, child: Pid) -> Result<(), String> {
    let source = format!("/proc/{child}/ns/pid");
    let target = dir.join(PID_NS_FILE);
    mount(
        Some(source.as_str()),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("cannot bind-mount {source} on {}: {e}", target.display()))?;
    let pause = ProcessId::of(child.as_raw()).ok_or("the pause process vanished")?;
    state::write_record(dir, PAUSE_RECORD, &PauseRecord { pause }).map_err(|e| e.to_string())
}

/// The pause process: PID 1 of the new namespace. Reaps children until told to stop.
fn pause() -> ! {
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_name(c"pause");
    // Hold nothing of the caller's: not its pipe, its log file or the sandbox directory.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let _ = nix::unistd::chdir("/");

    // Signals are taken synchronously: blocked, then waited for. A PID 1 only receives
    // signals it handles, and a blocked signal counts as handled, so SIGTERM and SIGINT reach
    // us; SIGKILL from the host always does.
    let mut set = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(signal);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    loop {
        match set.wait() {
            Ok(Signal::SIGTERM | Signal::SIGINT) => std::process::exit(0),
            _ => reap_all(),
        }
    }
}

/// Reaps every exited child; the namespace's orphans are re-parented to us.
fn reap_all() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
