//! The records a container leaves on disk, shared by the runtime and the shim.
//!
//! `shim.json` is written by the runtime before the shim starts; `started.json` by the shim once
//! the container runs; `exit.json` by the shim when it has exited. Each is written to a
//! temporary file and renamed, so a reader sees a whole record or none.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::RuntimeError;

/// File names inside a container's directory.
pub const SHIM_CONFIG: &str = "shim.json";
/// Written by the shim when the container has started.
pub const STARTED: &str = "started.json";
/// Written by the shim when the container has exited.
pub const EXIT: &str = "exit.json";
/// The shim's own log (its stderr).
pub const SHIM_LOG: &str = "shim.log";
/// The log of the exec helpers (`coracle exec-shim`), appended to by each.
pub const EXEC_LOG: &str = "exec.log";

/// What the shim needs to know, written by the runtime as `shim.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    /// The container id.
    pub id: String,
    /// libcontainer's state root (`run_dir/containers`).
    pub state_root: PathBuf,
    /// The CRI log file.
    pub log_path: PathBuf,
    /// The container's cgroup path.
    pub cgroups_path: String,
    /// The signal `stop` sends first (the image's STOPSIGNAL, else SIGTERM), as a number.
    pub stop_signal: i32,
    /// The container joins a shared PID namespace, so its init is not PID 1 and the kernel does
    /// not kill the rest of its processes when it exits: the shim kills its cgroup then, as
    /// containerd does (libcontainer's cgroup removal would too, but only after the output
    /// drain, while the leftovers keep running). Absent in records of older shims (false).
    #[serde(default)]
    pub kill_all_on_exit: bool,
}

/// A process identified by pid and start time, so that a reused pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// The pid in the host's pid namespace.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub start_ticks: u64,
}

impl ProcessId {
    /// The running process `pid`, if it exists.
    pub fn of(pid: i32) -> Option<ProcessId> {
        start_ticks(pid).map(|start_ticks| ProcessId { pid, start_ticks })
    }

    /// True while this very process exists (a zombie counts).
    pub fn is_alive(&self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }

    /// A pidfd for this process, or `None` if it is gone.
    pub fn pidfd(&self) -> Option<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the kernel just returned this fd to us and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Checked after opening: if the pid was reused before the open, the start time differs.
        self.is_alive().then_some(fd)
    }
}

fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and ')'; fields after the last ')' start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Written by the shim once the container runs: `started.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Started {
    /// The shim process.
    pub shim: ProcessId,
    /// The container's init process.
    pub init: ProcessId,
    /// When `start` returned.
    pub started_at: DateTime<Utc>,
}

/// Why a container ended, as Kubernetes reports it in `state.terminated.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// A non-zero exit code or a signal.
    Error,
    /// The kernel's OOM killer killed a process of the container.
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// The shim vanished without recording the exit.
    Unknown,
}

impl ExitReason {
    /// The Kubernetes reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::OomKilled => "OOMKilled",
            ExitReason::Unknown => "Unknown",
        }
    }
}

/// How a container ended: `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code; 128 + the signal number when killed by a signal.
    pub exit_code: i32,
    /// The signal that killed the init process, if any.
    pub signal: Option<i32>,
    /// The kernel OOM-killed a process in the container's cgroup.
    pub oom_killed: bool,
    /// When the container started.
    pub started_at: DateTime<Utc>,
    /// When the shim saw it exit.
    pub finished_at: DateTime<Utc>,
    /// Why it ended.
    pub reason: ExitReason,
    /// Details, e.g. why the exit is unknown.
    pub message: Option<String>,
}

/// The state of a container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Being created: the shim has not reported yet.
    Created,
    /// The init process runs.
    Running {
        /// The init process's pid (host pid namespace).
        pid: i32,
        /// When it started.
        started_at: DateTime<Utc>,
    },
    /// It has exited.
    Exited(ExitStatus),
}

impl ContainerStatus {
    /// The exit status, if the container has exited.
    pub fn exit(&self) -> Option<&ExitStatus> {
        match self {
            ContainerStatus::Exited(exit) => Some(exit),
            _ => None,
        }
    }
}

/// Writes `value` as JSON to `dir/name` atomically.
pub fn write_record<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), RuntimeError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let json = serde_json::to_vec_pretty(value).expect("records serialize");
    std::fs::write(&tmp, json).map_err(RuntimeError::io("cannot write", &tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(RuntimeError::io("cannot sync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(RuntimeError::io("cannot rename to", &path))
}

/// Reads `dir/name`; `Ok(None)` if it does not exist.
pub fn read_record<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, RuntimeError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| RuntimeError::CorruptState { path, source }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(RuntimeError::io("cannot read", path)(err)),
    }
}
