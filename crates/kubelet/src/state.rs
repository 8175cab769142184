//! What the engine remembers about a pod, kept on disk.
//!
//! A pod's directory (`DATA/pods/<uid>/`) holds `state.json`, written atomically (temp file,
//! fsync, rename) after every change that matters: a sandbox created, a container started or
//! exited, a back-off entry moved, a phase made terminal. A coracle process killed at any moment
//! therefore comes back to the last decision it made, re-adopts the containers that still run
//! and carries on: init containers that already succeeded are not run again, restart counts and
//! back-off survive.
//!
//! The layout mirrors what the upstream kubelet learns from the container runtime: for each
//! container, the latest instance and the one before it (for `lastState`), and a restart count
//! that only ever grows, as upstream's count derived from the log directory does.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use serde::{Deserialize, Serialize};

use crate::backoff::BackoffEntry;

/// Errors reading or writing a pod's state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state file could not be read or written.
    #[error("pod state {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not valid JSON of the expected shape.
    #[error("pod state {path}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Everything the engine knows about one pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodState {
    /// The pod as admitted: defaulted, validated, legacy annotations converted.
    pub pod: Pod,
    /// When the engine first accepted the pod (`status.startTime`).
    pub start_time: Option<Timestamp>,
    /// The current sandbox, if one exists.
    pub sandbox: Option<SandboxRecord>,
    /// How many sandboxes this pod has had; names the next one.
    pub sandbox_attempts: u32,
    /// Per container name (init, sidecar and app containers share one name space).
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Crash-loop and image-pull back-off entries, by upstream's stable key.
    pub backoff: BTreeMap<String, BackoffEntry>,
    /// The phase once it became terminal; terminal phases are sticky.
    pub terminal: Option<Terminal>,
    /// Set when the app containers finished for good and the pod was shut down.
    pub completed: bool,
    /// Conditions as last published, to keep `lastTransitionTime` stable.
    pub conditions: Vec<PodCondition>,
    /// Deletion requested by the user, with the grace period to honour.
    pub deletion: Option<Deletion>,
}

/// A pod deletion in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deletion {
    /// When it was asked for.
    pub requested_at: Timestamp,
    /// Seconds the containers get between SIGTERM and SIGKILL.
    pub grace_seconds: i64,
}

/// A terminal phase with the pod-level reason, if any (`DeadlineExceeded`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Terminal {
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// `status.reason`.
    pub reason: Option<String>,
    /// `status.message`.
    pub message: Option<String>,
}

/// A pod sandbox: the namespaces every container of the pod joins, and its network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Unique id, also the CNI container id.
    pub id: String,
    /// Which sandbox of this pod it is (1 for the first).
    pub attempt: u32,
    /// The directory holding the bind-mounted namespace files.
    pub dir: PathBuf,
    /// Whether the pod uses the host's network namespace.
    pub host_network: bool,
    /// Whether the containers share one PID namespace (`shareProcessNamespace`), held by a
    /// pause process; absent in state written before coracle supported it (false).
    #[serde(default)]
    pub shares_pid: bool,
    /// Pod IPs, IPv4 first.
    pub ips: Vec<String>,
    /// When the sandbox was created.
    pub created_at: Timestamp,
}

/// What the engine knows about one container of the pod.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// How many instances were created so far; names the next log file.
    pub attempts: u32,
    /// The latest instance, running or exited.
    pub current: Option<Instance>,
    /// The instance before it (`lastState`).
    pub previous: Option<Instance>,
    /// Why the container is waiting, when the kubelet holds it back (`CrashLoopBackOff`,
    /// `ErrImagePull`, `CreateContainerConfigError`, …): upstream's reason cache.
    pub waiting: Option<Waiting>,
}

impl ContainerRecord {
    /// `restartCount`: every instance after the first.
    pub fn restart_count(&self) -> i32 {
        self.attempts.saturating_sub(1) as i32
    }

    /// The latest instance if it is still running.
    pub fn running(&self) -> Option<&Instance> {
        self.current.as_ref().filter(|i| i.finished_at.is_none())
    }

    /// Forgets an instance that was recorded but never created (coracle stopped during its
    /// start): the one before it is current again and the attempt does not count.
    pub fn forget_unstarted(&mut self) {
        self.current = self.previous.take();
        self.attempts = self.attempts.saturating_sub(1);
    }

    /// The latest instance if it has exited.
    pub fn exited(&self) -> Option<&Instance> {
        self.current.as_ref().filter(|i| i.finished_at.is_some())
    }
}

/// A waiting reason and message, as shown in `state.waiting`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiting {
    /// `CrashLoopBackOff`, `ErrImagePull`, …
    pub reason: String,
    /// The detail, e.g. upstream's back-off message or the pull error.
    pub message: Option<String>,
}

/// One instance (one run) of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    /// The runtime's container id.
    pub id: String,
    /// Which sandbox it ran in.
    pub sandbox_attempt: u32,
    /// The image as the user named it, normalised (`docker.io/library/busybox:latest`).
    pub image: String,
    /// The image's digest reference (`docker.io/library/busybox@sha256:…`).
    pub image_id: String,
    /// The CRI log file of this instance.
    pub log_path: PathBuf,
    /// When the process started (absent if it never started).
    pub started_at: Option<Timestamp>,
    /// When it exited.
    pub finished_at: Option<Timestamp>,
    /// Exit code (128+n for a signal).
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `ContainerStatusUnknown`.
    pub reason: Option<String>,
    /// Termination message, or the runtime's own message for a start error.
    pub message: Option<String>,
    /// The host file bind-mounted at the container's `terminationMessagePath`.
    #[serde(default)]
    pub termination_log: Option<PathBuf>,
}

impl Instance {
    /// Whether it exited with code 0.
    pub fn succeeded(&self) -> bool {
        self.finished_at.is_some() && self.exit_code == Some(0)
    }
}

impl PodState {
    /// A fresh state for a newly admitted pod.
    pub fn new(pod: Pod) -> Self {
        PodState {
            pod,
            start_time: None,
            sandbox: None,
            sandbox_attempts: 0,
            containers: BTreeMap::new(),
            backoff: BTreeMap::new(),
            terminal: None,
            completed: false,
            conditions: Vec::new(),
            deletion: None,
        }
    }

    /// The pod's uid.
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }

    /// The record of container `name`, created empty on first use.
    pub fn record_mut(&mut self, name: &str) -> &mut ContainerRecord {
        self.containers.entry(name.to_string()).or_default()
    }

    /// The record of container `name`, if it has one.
    pub fn record(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.get(name)
    }

    /// Reads `dir/state.json`.
    pub fn load(dir: &Path) -> Result<PodState, StateError> {
        let path = dir.join("state.json");
        let bytes = fs::read(&path).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Writes `dir/state.json` atomically and durably.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join("state.json");
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("pod state serialises");
        let mut file = fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        // The rename itself must reach the disk too.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Converts the runtime's time stamps.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    t.timestamp_nanos_opt()
        .and_then(|n| Timestamp::from_nanosecond(n as i128).ok())
        .unwrap_or_else(Timestamp::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = PodState::new(Pod::default());
        state.record_mut("init").attempts = 3;
        state.save(dir.path()).unwrap();
        let loaded = PodState::load(dir.path()).unwrap();
        assert_eq!(loaded.record("init").unwrap().restart_count(), 2);
    }
}
