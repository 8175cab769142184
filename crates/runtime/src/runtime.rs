//! [`ContainerRuntime`]: the library API the kubelet calls; one shim process per container.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::ContainerConfig;
use crate::shim::StartReport;
use crate::state::{self, ContainerStatus, ExitReason, ExitStatus, ShimConfig, Started};
use crate::user::UserDb;
use crate::{cgroups, rootfs, spec, RuntimeError};

/// Creates, watches, stops and removes containers; cheap to clone, shareable across tasks.
#[derive(Debug, Clone)]
pub struct ContainerRuntime {
    inner: Arc<Paths>,
}

#[derive(Debug)]
struct Paths {
    /// `DATA/containers`: one directory per container instance.
    containers: PathBuf,
    /// `RUN/containers`: libcontainer's state root.
    state_root: PathBuf,
    /// The `coracle` binary, run as `coracle shim <dir>`.
    shim_exe: PathBuf,
}

impl ContainerRuntime {
    /// A runtime keeping containers under `data_dir/containers` and libcontainer state under
    /// `run_dir/containers`, starting shims as `shim_exe shim <dir>`.
    pub fn new(data_dir: &Path, run_dir: &Path, shim_exe: PathBuf) -> Self {
        ContainerRuntime {
            inner: Arc::new(Paths {
                containers: data_dir.join("containers"),
                state_root: run_dir.join("containers"),
                shim_exe,
            }),
        }
    }

    /// The `coracle` binary the shims are run from.
    pub(crate) fn shim_exe(&self) -> &Path {
        &self.inner.shim_exe
    }

    /// Gives the sandbox in `sandbox_dir` a PID namespace that its containers share, held by a
    /// pause process run from the `coracle` binary (see [`crate::pause`]); returns the
    /// namespace file. Blocks until the pause process runs.
    pub fn share_pid_namespace(&self, sandbox_dir: &Path) -> Result<PathBuf, RuntimeError> {
        crate::pause::start(&self.inner.shim_exe, sandbox_dir)
    }

    /// The directory of container `id`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.inner.containers.join(id)
    }

    /// Creates and starts a container; on failure nothing is left behind and the error carries
    /// the runtime's own message (e.g. `exec: "x": executable file not found in $PATH`).
    pub async fn start(&self, config: ContainerConfig) -> Result<ContainerStatus, RuntimeError> {
        validate_id(&config.id)?;
        let dir = self.container_dir(&config.id);
        if dir.exists() {
            return Err(RuntimeError::AlreadyExists {
                id: config.id.clone(),
            });
        }
        std::fs::create_dir_all(&dir).map_err(RuntimeError::io("cannot create", &dir))?;

        let result = self.prepare_and_start(&dir, &config).await;
        if result.is_err() {
            // The shim's log has libcontainer's details; it goes with the directory.
            let shim_log = std::fs::read_to_string(dir.join(state::SHIM_LOG)).unwrap_or_default();
            tracing::debug!(container = %config.id, shim_log = %shim_log.trim_end(), "start failed");
            let _ = self.delete_dir(&config.id, &dir);
        }
        result
    }

    async fn prepare_and_start(
        &self,
        dir: &Path,
        config: &ContainerConfig,
    ) -> Result<ContainerStatus, RuntimeError> {
        let id = &config.id;

        // The bundle: the overlay rootfs and config.json.
        let rootfs = rootfs::mount_overlay(dir, &config.layers)?;
        let privileged = config
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            == Some(true);
        let host_devices = if privileged {
            host_devices()
        } else {
            Vec::new()
        };
        let cgroups_path = format!("{}/{}", config.cgroup_parent.trim_end_matches('/'), id);
        let users = UserDb::read(&rootfs);
        let inputs = spec::SpecInputs {
            config,
            rootfs: &rootfs,
            users: &users,
            cgroups_path: &cgroups_path,
            unified_cgroups: cgroups::is_unified(),
            host_devices: &host_devices,
            bounding_caps: spec::own_bounding_caps(),
        };
        let oci = spec::build(&inputs).map_err(|reason| RuntimeError::InvalidSpec {
            id: id.clone(),
            reason,
        })?;
        let bundle_config = dir.join("config.json");
        let json = serde_json::to_vec_pretty(&oci).expect("specs serialize");
        std::fs::write(&bundle_config, json)
            .map_err(RuntimeError::io("cannot write", &bundle_config))?;

        let shim_config = ShimConfig {
            id: id.clone(),
            state_root: self.inner.state_root.clone(),
            log_path: config.log_path.clone(),
            cgroups_path,
            stop_signal: stop_signal(&config.image_config) as i32,
            kill_all_on_exit: config.sandbox.as_ref().is_some_and(|sb| sb.pid.is_some()),
        };
        state::write_record(dir, state::SHIM_CONFIG, &shim_config)?;

        let report = self.run_shim(id, dir).await?;
        match report {
            StartReport::Started { pid, started_at } => {
                tracing::info!(container = %id, pid, "container started");
                Ok(ContainerStatus::Running { pid, started_at })
            }
            StartReport::Failed { message } => Err(RuntimeError::StartFailed {
                id: id.clone(),
                message,
            }),
        }
    }

    /// Starts `coracle shim <dir>` and reads its one-line report.
    async fn run_shim(&self, id: &str, dir: &Path) -> Result<StartReport, RuntimeError> {
        let shim_log_path = dir.join(state::SHIM_LOG);
        let shim_log = std::fs::File::create(&shim_log_path)
            .map_err(RuntimeError::io("cannot create", &shim_log_path))?;
        let mut command = tokio::process::Command::new(&self.inner.shim_exe);
        command
            .arg("shim")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .env("RUST_BACKTRACE", "0");
        if std::env::var_os("CORACLE_LOG").is_none() {
            command.env("CORACLE_LOG", "info,libcgroups=error,libcontainer=error");
        }
        let shim_error = |reason: String| RuntimeError::Shim {
            id: id.to_string(),
            reason,
        };
        let mut child = command.spawn().map_err(|e| {
            shim_error(format!("cannot run {}: {e}", self.inner.shim_exe.display()))
        })?;

        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).await;
        // The first shim process exits right after forking; reap it.
        let _ = child.wait().await;
        if let Err(err) = read {
            return Err(shim_error(format!("cannot read its report: {err}")));
        }
        serde_json::from_str(line.trim()).map_err(|_| {
            let log = std::fs::read_to_string(&shim_log_path).unwrap_or_default();
            let last = log.lines().last().unwrap_or("no output").to_string();
            shim_error(format!("it exited without reporting ({last})"))
        })
    }

    /// The container's state, from its records on disk.
    pub fn status(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        let dir = self.container_dir(id);
        if !dir.join(state::SHIM_CONFIG).exists() {
            return Err(RuntimeError::NotFound { id: id.to_string() });
        }
        if let Some(exit) = state::read_record::<ExitStatus>(&dir, state::EXIT)? {
            return Ok(ContainerStatus::Exited(exit));
        }
        let Some(started) = state::read_record::<Started>(&dir, state::STARTED)? else {
            return Ok(ContainerStatus::Created);
        };
        if started.shim.is_alive() {
            return Ok(ContainerStatus::Running {
                pid: started.init.pid,
                started_at: started.started_at,
            });
        }
        // The shim may have written exit.json and exited since the first look.
        if let Some(exit) = state::read_record::<ExitStatus>(&dir, state::EXIT)? {
            return Ok(ContainerStatus::Exited(exit));
        }
        Ok(ContainerStatus::Exited(ExitStatus {
            exit_code: 255,
            signal: None,
            oom_killed: false,
            started_at: started.started_at,
            finished_at: chrono::Utc::now(),
            reason: ExitReason::Unknown,
            message: Some("the container's shim exited without recording the exit status".into()),
        }))
    }

    /// Resolves when the container has exited, also for a container started by an earlier
    /// coracle process: it waits on the shim's pidfd, then reads `exit.json`.
    pub async fn wait(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        loop {
            let status = self.status(id)?;
            let started = match status {
                ContainerStatus::Exited(_) => return Ok(status),
                ContainerStatus::Created => None,
                ContainerStatus::Running { .. } => {
                    state::read_record::<Started>(&self.container_dir(id), state::STARTED)?
                }
            };
            let pidfd = started.and_then(|s| s.shim.pidfd()).and_then(|fd| {
                // SAFETY: the OwnedFd is moved into the AsyncFd, which keeps it open and
                // unchanged until it is dropped.
                unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
            });
            match pidfd {
                // Bounded, so that a missed wake-up only costs a second.
                Some(fd) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), fd.readable()).await;
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sends `signal` to the container's init process; an exited container is left alone.
    pub fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let ContainerStatus::Running { .. } = self.status(id)? else {
            return Ok(());
        };
        let Some(started) = state::read_record::<Started>(&self.container_dir(id), state::STARTED)?
        else {
            return Ok(());
        };
        // A pidfd pins the process, so a reused pid is never signalled.
        let Some(pidfd) = started.init.pidfd() else {
            return Ok(());
        };
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number and no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                signal as i32,
                std::ptr::null::<u8>(),
                0,
            )
        };
        match rc {
            0 => Ok(()),
            _ => match nix::Error::last() {
                nix::Error::ESRCH => Ok(()),
                err => Err(RuntimeError::Sys {
                    action: format!("cannot signal container \"{id}\""),
                    source: err,
                }),
            },
        }
    }

    /// Sends the image's STOPSIGNAL (SIGTERM by default), waits up to `grace`, then SIGKILL.
    ///
    /// A process that is PID 1 of its namespace ignores signals it has no handler for, so a
    /// shell without a `trap` only stops at the SIGKILL.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<ContainerStatus, RuntimeError> {
        let dir = self.container_dir(id);
        let config: Option<ShimConfig> = state::read_record(&dir, state::SHIM_CONFIG)?;
        let config = config.ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        let signal = Signal::try_from(config.stop_signal).unwrap_or(Signal::SIGTERM);

        self.kill(id, signal)?;
        if let Ok(status) = tokio::time::timeout(grace, self.wait(id)).await {
            return status;
        }
        tracing::info!(container = %id, "grace period over, killing");
        self.kill(id, Signal::SIGKILL)?;
        self.wait(id).await
    }

    /// Deletes an exited container: rootfs, state, cgroup. The log file stays.
    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.container_dir(id);
        let status = match self.status(id) {
            // A start cut off before the shim's config was written: only the directory.
            Err(RuntimeError::NotFound { .. }) if dir.exists() => {
                return self.delete_dir(id, &dir);
            }
            status => status?,
        };
        match status {
            ContainerStatus::Running { .. } => {
                return Err(RuntimeError::StillRunning { id: id.to_string() })
            }
            // The shim died with the container running: kill what is left of it.
            ContainerStatus::Exited(ExitStatus {
                reason: ExitReason::Unknown,
                ..
            }) => {
                if let Some(started) = state::read_record::<Started>(&dir, state::STARTED)? {
                    if started.init.is_alive() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(started.init.pid),
                            Signal::SIGKILL,
                        );
                    }
                }
            }
            _ => {}
        }
        self.delete_dir(id, &dir)?;
        tracing::debug!(container = %id, "container removed");
        Ok(())
    }

    /// Unmounts and deletes a container's directory and any libcontainer state and cgroup left.
    fn delete_dir(&self, id: &str, dir: &Path) -> Result<(), RuntimeError> {
        rootfs::unmount(dir)?;
        // Never recurse into a mounted rootfs: that would delete the image's layers.
        if rootfs::is_mount_point(&rootfs::merged_dir(dir)) {
            return Err(RuntimeError::Sys {
                action: format!("rootfs of container \"{id}\" is still mounted"),
                source: nix::Error::EBUSY,
            });
        }
        let config: Option<ShimConfig> = state::read_record(dir, state::SHIM_CONFIG).ok().flatten();
        let stale = self.inner.state_root.join(id);
        if stale.exists() {
            let _ = std::fs::remove_dir_all(&stale);
        }
        if let Some(config) = config {
            let _ = cgroups::remove_cgroup(&config.cgroups_path);
        }
        std::fs::remove_dir_all(dir).map_err(RuntimeError::io("cannot remove", dir))
    }

    /// Every container on disk with its state, for re-adoption after a restart.
    pub fn list(&self) -> Result<Vec<(String, ContainerStatus)>, RuntimeError> {
        let entries = match std::fs::read_dir(&self.inner.containers) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(RuntimeError::io("cannot list", &self.inner.containers)(err)),
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let id = entry.file_name().to_string_lossy().to_string();
            match self.status(&id) {
                Ok(status) => out.push((id, status)),
                Err(RuntimeError::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// Container ids name directories and cgroups: `[a-z0-9-]`, not starting with '-'.
fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId { id: id.to_string() })
    }
}

/// The image's STOPSIGNAL (`SIGQUIT`, `QUIT` or a number), else SIGTERM.
fn stop_signal(image: &oci_spec::image::ImageConfiguration) -> Signal {
    let name = image
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().clone())
        .unwrap_or_default();
    let upper = name.to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).unwrap_or(Signal::SIGTERM);
    }
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().unwrap_or(Signal::SIGTERM)
}

/// The host's device nodes directly under /dev, for privileged containers.
fn host_devices() -> Vec<(String, char, i64, i64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            let kind = if meta.file_type().is_char_device() {
                'c'
            } else if meta.file_type().is_block_device() {
                'b'
            } else {
                return None;
            };
            let rdev = meta.rdev();
            let (major, minor) = (
                nix::sys::stat::major(rdev) as i64,
                nix::sys::stat::minor(rdev) as i64,
            );
            Some((entry.path().display().to_string(), kind, major, minor))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_names() {
        assert!(validate_id("web-0").is_ok());
        assert!(validate_id("Web").is_err());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("-x").is_err());
        assert!(validate_id("").is_err());
    }
}
