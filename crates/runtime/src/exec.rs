//! Running a process inside a running container (`kubectl exec`), from the daemon's side.
//!
//! [`ContainerRuntime::exec`] starts `coracle exec-shim <dir> [--tty] -- <command>…`, a fresh
//! single-threaded helper (see [`exec_shim`](crate::exec_shim)) that joins the container with
//! libcontainer's tenant mode. The helper's stdin, stdout and stderr are the exec'd process's
//! (in tty mode the helper copies them to and from the terminal); a unix socket on its fd 3
//! carries [`ExecReport`]s to the daemon and [`ExecControl`] messages (terminal resizes) to the
//! helper. Dropping the session closes that socket, and the helper then kills the process, as
//! containerd does when the exec's stream goes away.
//!
//! [`ContainerRuntime::exec`]: crate::ContainerRuntime::exec

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

use crate::state::{self, ContainerStatus};
use crate::{ContainerRuntime, RuntimeError};

/// The file descriptor of the control socket in the helper.
pub const CONTROL_FD: i32 = 3;

/// What to run in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments, run as the container's process would be (its env,
    /// working directory, user, capabilities).
    pub command: Vec<String>,
    /// Give the process a terminal (stdout and stderr are then one stream).
    pub tty: bool,
    /// Connect stdin; otherwise the process reads `/dev/null`.
    pub stdin: bool,
    /// The terminal's initial size (columns, rows), set before the command runs.
    pub size: Option<(u16, u16)>,
}

/// What the helper tells the daemon, one JSON line each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecReport {
    /// The process runs.
    Started {
        /// Its pid (host pid namespace).
        pid: i32,
    },
    /// It could not be started; `message` is the runtime's own error, e.g.
    /// `exec: "nosuch": executable file not found in $PATH`.
    Failed {
        /// The cause.
        message: String,
    },
    /// It has exited.
    Exited {
        /// The exit code; 128 + the signal number if a signal killed it.
        code: i32,
    },
}

/// What the daemon tells the helper, one JSON line each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecControl {
    /// The client's terminal changed size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
}

/// A process running in a container, with its streams.
#[derive(Debug)]
pub struct ExecSession {
    /// The process's stdin, when it was asked for; dropping it is end-of-file.
    pub stdin: Option<ChildStdin>,
    /// Its stdout (in tty mode: the terminal's output).
    pub stdout: ChildStdout,
    /// Its stderr (nothing in tty mode).
    pub stderr: ChildStderr,
    /// Sends terminal resizes.
    pub resizer: ExecResizer,
    /// Resolves to the exit code.
    pub exit: ExecExit,
}

/// The sending side of the control socket.
#[derive(Debug)]
pub struct ExecResizer(OwnedWriteHalf);

impl ExecResizer {
    /// Resizes the process's terminal (ignored without one).
    pub async fn resize(&mut self, width: u16, height: u16) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&ExecControl::Resize { width, height })
            .expect("control messages serialize");
        line.push(b'\n');
        self.0.write_all(&line).await
    }
}

/// The receiving side of the control socket, and the helper process.
#[derive(Debug)]
pub struct ExecExit {
    reports: BufReader<OwnedReadHalf>,
    helper: Child,
    id: String,
}

impl ExecExit {
    /// Waits for the process to exit and returns its exit code.
    pub async fn wait(mut self) -> Result<i32, RuntimeError> {
        let report = next_report(&mut self.reports).await;
        let _ = self.helper.wait().await;
        match report {
            Some(ExecReport::Exited { code }) => Ok(code),
            other => Err(RuntimeError::Shim {
                id: self.id,
                reason: format!("the exec helper ended without an exit code ({other:?})"),
            }),
        }
    }
}

async fn next_report(reports: &mut BufReader<OwnedReadHalf>) -> Option<ExecReport> {
    let mut line = String::new();
    match reports.read_line(&mut line).await {
        Ok(1..) => serde_json::from_str(line.trim()).ok(),
        _ => None,
    }
}

impl ContainerRuntime {
    /// Starts `request.command` in the running container `id`; returns once the process runs,
    /// or the runtime's reason why it cannot ([`RuntimeError::ExecFailed`]).
    pub async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        let dir = self.container_dir(id);
        if !matches!(self.status(id)?, ContainerStatus::Running { .. }) {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(RuntimeError::io("cannot create a socket pair for", &dir))?;

        let mut command = tokio::process::Command::new(self.shim_exe());
        command.arg("exec-shim").arg(&dir);
        if request.tty {
            command.arg("--tty");
        }
        if let (true, Some((width, height))) = (request.tty, request.size) {
            command.arg(format!("--size={width}x{height}"));
        }
        command
            .arg("--")
            .args(&request.command)
            .stdin(if request.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_BACKTRACE", "0");
        pass_control_fd(&mut command, theirs.into());
        let shim_error = |reason: String| RuntimeError::Shim {
            id: id.to_string(),
            reason,
        };
        let mut helper = command
            .spawn()
            .map_err(|e| shim_error(format!("cannot run {}: {e}", self.shim_exe().display())))?;
        // The command (holding the helper's end of the socket) must be gone before we wait
        // for reports, so that a helper that dies leaves us an end-of-file.
        drop(command);

        ours.set_nonblocking(true).map_err(RuntimeError::io(
            "cannot configure the exec socket of",
            &dir,
        ))?;
        let socket = tokio::net::UnixStream::from_std(ours)
            .map_err(RuntimeError::io("cannot use the exec socket of", &dir))?;
        let (read, write) = socket.into_split();
        let mut reports = BufReader::new(read);
        match next_report(&mut reports).await {
            Some(ExecReport::Started { pid }) => {
                tracing::debug!(container = %id, pid, "exec process started");
            }
            Some(ExecReport::Failed { message }) => {
                let _ = helper.wait().await;
                return Err(RuntimeError::ExecFailed {
                    id: id.to_string(),
                    message,
                });
            }
            other => {
                let _ = helper.wait().await;
                let log = std::fs::read_to_string(dir.join(state::EXEC_LOG)).unwrap_or_default();
                let last = log.lines().last().unwrap_or("no output").to_string();
                return Err(shim_error(format!(
                    "the exec helper did not start the process ({other:?}; {last})"
                )));
            }
        }

        Ok(ExecSession {
            stdin: helper.stdin.take(),
            stdout: helper.stdout.take().expect("stdout is piped"),
            stderr: helper.stderr.take().expect("stderr is piped"),
            resizer: ExecResizer(write),
            exit: ExecExit {
                reports,
                helper,
                id: id.to_string(),
            },
        })
    }
}

/// Makes `fd` the helper's [`CONTROL_FD`] (without close-on-exec).
fn pass_control_fd(command: &mut tokio::process::Command, fd: OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls dup2 and fcntl,
    // which are async-signal-safe; `fd` stays open in the parent until `command` is dropped,
    // because the closure owns it.
    unsafe {
        command.pre_exec(move || {
            let _keep = &fd;
            if raw == CONTROL_FD {
                if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, CONTROL_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_one_json_line_each() {
        let line = serde_json::to_string(&ExecReport::Exited { code: 3 }).unwrap();
        assert_eq!(line, r#"{"exited":{"code":3}}"#);
        let back: ExecReport = serde_json::from_str(r#"{"failed":{"message":"x"}}"#).unwrap();
        assert_eq!(
            back,
            ExecReport::Failed {
                message: "x".into()
            }
        );
        let resize = serde_json::to_string(&ExecControl::Resize {
            width: 100,
            height: 30,
        })
        .unwrap();
        assert_eq!(resize, r#"{"resize":{"width":100,"height":30}}"#);
    }
}
