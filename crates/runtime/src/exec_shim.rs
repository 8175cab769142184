//! The exec helper: the single-threaded process that runs one command inside a running
//! container and holds its stdio until it exits.
//!
//! `coracle exec-shim <dir> [--tty] -- <command>…` is started by
//! [`ContainerRuntime::exec`](crate::ContainerRuntime::exec), with the control socket on fd 3
//! (see [`exec`](crate::exec) for the protocol). It
//!
//! 1. reads the container's `shim.json` and OCI spec, and writes a `process.json`: the
//!    container's own process (env, working directory, user, capabilities, rlimits,
//!    `noNewPrivileges`) with the command as its args;
//! 2. joins the container with libcontainer's tenant mode: the init process's mount, pid,
//!    net, ipc and uts namespaces (the pod sandbox's), the container's cgroup and rootfs;
//! 3. reports `started` or `failed` with the runtime's own message on the control socket;
//! 4. in tty mode copies its stdin to the terminal and the terminal to its stdout, and applies
//!    resizes; without a tty the process has the helper's stdin, stdout and stderr itself;
//! 5. reports `exited` with the exit code. If the control socket closes first (the client went
//!    away), it kills the process.
//!
//! # Caveats
//!
//! libcontainer 0.7's tenant mode replaces the spec's `linux` section by namespaces and the
//! cgroup only, so it would drop the container's seccomp profile. The helper's executor loads
//! that profile itself just before `execve`. It can only do so when `noNewPrivileges` is set
//! (coracle's default) or the process keeps `CAP_SYS_ADMIN`; for a container with
//! `allowPrivilegeEscalation: true` the exec'd process runs without the seccomp filter, and
//! the helper logs a warning.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxSeccomp, Spec};

use crate::exec::{ExecControl, ExecReport, CONTROL_FD};
use crate::executor::ContainerExecutor;
use crate::state::{self, ProcessId, ShimConfig};
use crate::RuntimeError;

/// How long terminal output is still copied after the process exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `command` in the container of `dir`; returns the helper's exit code.
///
/// `size` (columns, rows) is the terminal's size when the command starts (tty mode only).
pub fn run(
    dir: &Path,
    command: Vec<String>,
    tty: bool,
    size: Option<(u16, u16)>,
) -> Result<i32, RuntimeError> {
    // SAFETY: fd 3 was set up by the daemon as our end of the control socket and nothing
    // else in this process owns it.
    let mut control = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };

    match start(dir, command, tty, size) {
        Ok((pid, terminal)) => {
            send(&mut control, &ExecReport::Started { pid: pid.as_raw() });
            let code = supervise(pid, terminal, &mut control);
            tracing::info!(pid = pid.as_raw(), code, "exec process exited");
            send(&mut control, &ExecReport::Exited { code });
            Ok(0)
        }
        Err(message) => {
            tracing::info!(%message, "exec failed");
            send(&mut control, &ExecReport::Failed { message });
            Ok(1)
        }
    }
}

/// Starts the process; returns its pid and, in tty mode, the terminal's master side.
fn start(
    dir: &Path,
    command: Vec<String>,
    tty: bool,
    size: Option<(u16, u16)>,
) -> Result<(Pid, Option<OwnedFd>), String> {
    let config: ShimConfig = state::read_record(dir, state::SHIM_CONFIG)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no container in {}", dir.display()))?;
    let spec = Spec::load(dir.join("config.json")).map_err(|e| e.to_string())?;

    // The container's own process with the exec's command: what runc and containerd run.
    let mut process = spec
        .process()
        .clone()
        .ok_or("the container has no process")?;
    process.set_args(Some(command)).set_terminal(Some(tty));
    let process_path = dir.join(format!("exec-{}.json", std::process::id()));
    let json = serde_json::to_vec(&process).map_err(|e| e.to_string())?;
    std::fs::write(&process_path, json)
        .map_err(|e| format!("cannot write {}: {e}", process_path.display()))?;

    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let executor = ExecExecutor {
        seccomp,
        size: size.filter(|_| tty),
        ..Default::default()
    };
    let result = build(dir, &config, &process_path, executor, tty);
    let _ = std::fs::remove_file(&process_path);
    result
}

fn build(
    dir: &Path,
    config: &ShimConfig,
    process_path: &Path,
    executor: ExecExecutor,
    tty: bool,
) -> Result<(Pid, Option<OwnedFd>), String> {
    let console = tty.then(|| ConsoleSocket::bind(dir)).transpose()?;
    let mut builder = ContainerBuilder::new(config.id.clone(), SyscallType::default())
        .with_root_path(&config.state_root)
        .map_err(|e| e.to_string())?
        .with_executor(executor);
    builder = match &console {
        Some(console) => builder.with_console_socket(Some(&console.path)),
        None => builder
            .with_stdin(dup(0)?)
            .with_stdout(dup(1)?)
            .with_stderr(dup(2)?),
    };
    let pid = builder
        .as_tenant()
        .with_process(Some(process_path))
        .with_detach(true)
        .build()
        .map_err(|e| error_message(&e))?;

    // Our copies of the process's stdio must not keep its pipes open.
    if console.is_none() {
        detach_stdio();
    }
    let terminal = console.map(|c| c.receive_master()).transpose()?;
    Ok((pid, terminal))
}

/// The message of a tenant-build error, without libcontainer's wrapping.
///
/// Errors raised in the container's process come back wrapped as `failed to create
/// container: … error in executing process : <message>`; the user wants `<message>` (e.g.
/// `exec: "nosuch": executable file not found in $PATH`).
fn error_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    innermost(&parts.join(": ")).to_string()
}

/// The part of libcontainer's message after its last `error in executing process : `.
fn innermost(message: &str) -> &str {
    const WRAPPER: &str = "error in executing process : ";
    match message.rfind(WRAPPER) {
        Some(at) => &message[at + WRAPPER.len()..],
        None => message,
    }
}

fn dup(fd: RawFd) -> Result<OwnedFd, String> {
    // SAFETY: fds 0, 1 and 2 are open for the whole life of the helper.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fd.try_clone_to_owned()
        .map_err(|e| format!("cannot duplicate the exec's stdio: {e}"))
}

/// Points our own stdin, stdout and stderr at /dev/null.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..=2 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
}

/// The unix socket libcontainer's tenant sends the terminal's master side on.
struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Binds `exec-<pid>.sock` in the container's directory. The helper is single-threaded,
    /// so it may `chdir` there to keep the socket address short (108 bytes at most).
    fn bind(dir: &Path) -> Result<ConsoleSocket, String> {
        let name = format!("exec-{}.sock", std::process::id());
        let path = dir.join(&name);
        let _ = std::fs::remove_file(&path);
        let previous = std::env::current_dir().ok();
        std::env::set_current_dir(dir)
            .map_err(|e| format!("cannot enter {}: {e}", dir.display()))?;
        let listener = UnixListener::bind(&name);
        if let Some(previous) = previous {
            let _ = std::env::set_current_dir(previous);
        }
        let listener = listener.map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
        Ok(ConsoleSocket { listener, path })
    }

    /// Accepts the tenant's connection and receives the pty master it sends.
    fn receive_master(self) -> Result<OwnedFd, String> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| format!("cannot accept the console socket: {e}"))?;
        let _ = std::fs::remove_file(&self.path);
        let mut name = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .map_err(|e| format!("cannot receive the terminal: {e}"))?;
        for cmsg in msg
            .cmsgs()
            .map_err(|e| format!("cannot receive the terminal: {e}"))?
        {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd for us.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err("the container sent no terminal".into())
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// [`ContainerExecutor`], plus the container's seccomp profile loaded right before `execve`
/// and the terminal's initial size.
#[derive(Clone, Default)]
struct ExecExecutor {
    inner: ContainerExecutor,
    seccomp: Option<LinuxSeccomp>,
    size: Option<(u16, u16)>,
}

impl Executor for ExecExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // Our stdin is the terminal here; a size set later would race with the command.
        if let Some((width, height)) = self.size {
            set_size(0, width, height);
        }
        if let Some(seccomp) = &self.seccomp {
            // Fails with EACCES without no_new_privs or CAP_SYS_ADMIN; see the module's caveat.
            if let Err(err) = libcontainer::seccomp::initialize_seccomp(seccomp) {
                tracing::warn!(error = %err, "exec runs without the container's seccomp profile");
            }
        }
        self.inner.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        self.inner.validate(spec)
    }
}

/// Waits for the process, copying terminal IO and applying control messages meanwhile;
/// returns the exit code.
fn supervise(pid: Pid, terminal: Option<OwnedFd>, control: &mut UnixStream) -> i32 {
    let pidfd = ProcessId::of(pid.as_raw()).and_then(|p| p.pidfd());
    let mut terminal = terminal.map(File::from);
    let mut stdin_open = terminal.is_some();
    let mut control_open = true;
    let mut control_buf = Vec::new();
    let mut status: Option<i32> = None;
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; 32 * 1024];

    loop {
        if status.is_none() {
            status = reap(pid);
            if status.is_some() {
                drain_until = Some(Instant::now() + DRAIN_TIMEOUT);
            }
        }
        match (drain_until, &terminal) {
            (Some(_), None) => break,
            (Some(deadline), Some(_)) if Instant::now() >= deadline => break,
            _ => {}
        }

        // Poll order: terminal, stdin, control, pidfd; absent ones are left out.
        let mut fds = Vec::new();
        let mut kinds = Vec::new();
        if let Some(t) = &terminal {
            fds.push(PollFd::new(t.as_fd(), PollFlags::POLLIN));
            kinds.push(Ready::Terminal);
        }
        let stdin = std::io::stdin();
        if stdin_open && status.is_none() {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            kinds.push(Ready::Stdin);
        }
        if control_open && status.is_none() {
            fds.push(PollFd::new(control.as_fd(), PollFlags::POLLIN));
            kinds.push(Ready::Control);
        }
        if let (Some(fd), None) = (&pidfd, status) {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            kinds.push(Ready::Exit);
        }
        let timeout = match (drain_until, &pidfd) {
            (Some(deadline), _) => deadline.saturating_duration_since(Instant::now()),
            (None, Some(_)) => Duration::from_secs(60),
            (None, None) => Duration::from_millis(100),
        };
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(err) => {
                tracing::warn!(error = %err, "poll failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        let ready: Vec<Ready> = kinds
            .iter()
            .zip(fds.iter())
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(kind, _)| *kind)
            .collect();
        drop(fds);

        for kind in ready {
            match kind {
                Ready::Terminal => {
                    let Some(t) = terminal.as_mut() else { continue };
                    match t.read(&mut buf) {
                        // EIO: the last process holding the terminal's other side exited.
                        Ok(0) | Err(_) => terminal = None,
                        Ok(n) => {
                            let mut out = std::io::stdout();
                            if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                                terminal = None;
                            }
                        }
                    }
                }
                Ready::Stdin => match std::io::stdin().lock().read(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        if let Some(t) = terminal.as_mut() {
                            let _ = t.write_all(&buf[..n]);
                        }
                    }
                },
                Ready::Control => match control.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        // The daemon dropped the session: the client is gone.
                        tracing::info!(pid = pid.as_raw(), "exec client gone, killing");
                        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                        control_open = false;
                    }
                    Ok(n) => {
                        control_buf.extend_from_slice(&buf[..n]);
                        for message in take_lines(&mut control_buf) {
                            apply(&message, terminal.as_ref());
                        }
                    }
                },
                Ready::Exit => {}
            }
        }
    }
    reap_all();
    status.unwrap_or(255)
}

#[derive(Debug, Clone, Copy)]
enum Ready {
    Terminal,
    Stdin,
    Control,
    Exit,
}

/// Splits complete lines off `buf` and parses them; partial input stays.
fn take_lines(buf: &mut Vec<u8>) -> Vec<ExecControl> {
    let mut out = Vec::new();
    while let Some(at) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=at).collect();
        match serde_json::from_slice(&line) {
            Ok(message) => out.push(message),
            Err(err) => tracing::warn!(error = %err, "bad control message"),
        }
    }
    out
}

fn apply(message: &ExecControl, terminal: Option<&File>) {
    let ExecControl::Resize { width, height } = *message;
    if let Some(terminal) = terminal {
        set_size(terminal.as_raw_fd(), width, height);
    }
}

/// Sets the window size of the terminal `fd` (either side of a pty).
fn set_size(fd: RawFd, width: u16, height: u16) {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer; a wrong fd only fails.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) };
    if rc < 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot resize the terminal");
    }
}

/// The exit code of `pid` if it has exited (128 + signal when killed); reaps other children
/// (libcontainer's intermediate process) on the way.
fn reap(pid: Pid) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) => continue,
            // ECHILD: no children left, so ours is gone without us seeing it.
            Err(_) => return Some(255),
        }
    }
}

fn reap_all() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Writes one report line; a vanished daemon is fine.
fn send(control: &mut UnixStream, report: &ExecReport) {
    let mut line = serde_json::to_vec(report).expect("reports serialize");
    line.push(b'\n');
    let _ = control.write_all(&line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_process_error_is_unwrapped() {
        let wrapped = "failed to create container: exec process failed with error error in \
                       executing process : exec: \"nosuch\": executable file not found in $PATH";
        assert_eq!(
            innermost(wrapped),
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        assert_eq!(innermost("container not running"), "container not running");
    }

    #[test]
    fn control_lines_are_split_and_partial_input_is_kept() {
        let mut buf = br#"{"resize":{"width":80,"height":24}}
{"resize":{"width":100,"#
            .to_vec();
        let messages = take_lines(&mut buf);
        assert_eq!(
            messages,
            vec![ExecControl::Resize {
                width: 80,
                height: 24
            }]
        );
        buf.extend_from_slice(b"\"height\":30}}\n");
        assert_eq!(
            take_lines(&mut buf),
            vec![ExecControl::Resize {
                width: 100,
                height: 30
            }]
        );
        assert!(buf.is_empty());
    }
}
