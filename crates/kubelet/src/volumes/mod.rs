//! Pod volumes: prepared on the host under the pod directory before any container starts,
//! refreshed on every sync, and removed when the pod is gone. Follows upstream's volume
//! plugins (pkg/volume/*) and kubelet's `makeMounts` (pkg/kubelet/kubelet_pods.go).
//!
//! Layout, as upstream's `pods/<uid>/volumes/<plugin>/<name>`:
//! `<pod_dir>/volumes/kubernetes.io~{empty-dir,configmap,secret,downward-api,projected}/<name>`.
//! hostPath volumes are used in place and never appear there, so [`teardown_volumes`] cannot
//! touch their content.
//!
//! One module per volume type ([`empty_dir`], [`host_path`], [`config_map`], [`secret`],
//! [`downward_api`], [`projected`]), the file layout they share ([`atomic_writer`]), and the
//! per-container side ([`mounts`]: subPath, read-only, propagation).
//!
//! # Differences from upstream
//! - Volumes are set up one after the other and the first failure is returned.
//! - `fsGroup` / `fsGroupChangePolicy` ownership changes and SELinux relabelling are not done:
//!   files belong to root with the modes the pod asked for.
//! - Only emptyDir (disk or `Memory`), hostPath, configMap, secret, downwardAPI and projected
//!   are supported; any other type (persistentVolumeClaim, nfs, image, hugepages medium…) is a
//!   setup error naming the type.
//! - A projected `serviceAccountToken` or `clusterTrustBundle` source is skipped with a warning
//!   in [`PodVolumes::warnings`]: coracle has no API server to issue tokens yet.

pub mod atomic_writer;
pub mod config_map;
pub mod downward_api;
pub mod empty_dir;
pub mod host_path;
mod mount;
pub mod mounts;
pub mod projected;
pub mod quantity;
pub mod secret;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{KeyToPath, Pod, Volume};
use tracing::{debug, info};

use crate::env::{ConfigError, NodeInfo};
use crate::objects::ObjectSource;
use atomic_writer::{FileProjection, Payload, WriteError};

pub use mounts::{container_mounts, ContainerMount, Propagation};

/// The permission bits of configMap, secret, downwardAPI and projected files when the pod
/// gives no `defaultMode` (the API server's default, 0644).
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// The kind of a prepared volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    /// `emptyDir`, on disk or (medium `Memory`) on a tmpfs.
    EmptyDir,
    /// `hostPath`: a path of the host, used in place.
    HostPath,
    /// `configMap` files.
    ConfigMap,
    /// `secret` files, on a tmpfs.
    Secret,
    /// `downwardAPI` files, on a tmpfs.
    DownwardApi,
    /// `projected` files, on a tmpfs.
    Projected,
}

/// One prepared volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodVolume {
    /// Where the volume is on the host.
    pub host_path: PathBuf,
    /// Its type.
    pub kind: VolumeKind,
    /// Whether a tmpfs is mounted at `host_path`.
    pub tmpfs: bool,
    /// Whether containers always get it read-only (configMap, secret, downwardAPI,
    /// projected), whatever the volumeMount says.
    pub read_only: bool,
}

/// The prepared volumes of a pod, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    volumes: BTreeMap<String, PodVolume>,
    /// Messages for Warning events: volume content coracle skipped.
    pub warnings: Vec<String>,
}

impl PodVolumes {
    /// The volume called `name`.
    pub fn get(&self, name: &str) -> Option<&PodVolume> {
        self.volumes.get(name)
    }

    /// All volumes, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PodVolume)> {
        self.volumes
            .iter()
            .map(|(name, volume)| (name.as_str(), volume))
    }
}

/// A volume could not be prepared or removed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Setting up one volume failed.
    #[error("MountVolume.SetUp failed for volume {volume:?}")]
    SetUp {
        /// The volume's name.
        volume: String,
        /// Why.
        #[source]
        source: SetUpError,
    },
    /// Removing the pod's volumes failed.
    #[error("failed to tear down the volumes in {path}")]
    TearDown {
        /// The pod's volumes directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl VolumeError {
    /// The text of upstream's `FailedMount` event, e.g.
    /// `MountVolume.SetUp failed for volume "cfg" : configmap "app" not found`.
    pub fn event_message(&self) -> String {
        match self {
            VolumeError::SetUp { volume, source } => {
                format!("MountVolume.SetUp failed for volume {volume:?} : {source}")
            }
            other => other.to_string(),
        }
    }
}

/// Why one volume could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    /// A directory for the volume could not be created.
    #[error("failed to create directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The mount table could not be read.
    #[error("failed to read the mount table")]
    MountTable(#[source] std::io::Error),
    /// A tmpfs could not be mounted.
    #[error("failed to mount tmpfs on {path}")]
    MountTmpfs {
        /// The mount point.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: nix::errno::Errno,
    },
    /// A hostPath `type` check failed.
    #[error("hostPath type check failed: {path} is not a {expected}")]
    HostPathType {
        /// The host path.
        path: String,
        /// What it should be: directory, file, socket file, character device, block device.
        expected: &'static str,
    },
    /// A hostPath `type` is not one Kubernetes defines.
    #[error("{type_} is an invalid volume type")]
    HostPathInvalidType {
        /// The rejected type.
        type_: String,
    },
    /// A `DirectoryOrCreate` / `FileOrCreate` path could not be created.
    #[error("failed to create hostPath {path}")]
    HostPathCreate {
        /// The host path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A non-optional ConfigMap is missing.
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound {
        /// The ConfigMap's name.
        name: String,
    },
    /// A non-optional Secret is missing.
    #[error("secret {name:?} not found")]
    SecretNotFound {
        /// The Secret's name.
        name: String,
    },
    /// An `items` entry names a key the ConfigMap does not have.
    #[error("configmap references non-existent config key: {key}")]
    ConfigMapKeyMissing {
        /// The key.
        key: String,
    },
    /// An `items` entry names a key the Secret does not have.
    #[error("references non-existent secret key: {key}")]
    SecretKeyMissing {
        /// The key.
        key: String,
    },
    /// A downward API item could not be resolved.
    #[error(transparent)]
    DownwardApi(#[from] ConfigError),
    /// The volume's files could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// An emptyDir `sizeLimit` is not a quantity.
    #[error(transparent)]
    SizeLimit(#[from] quantity::QuantityError),
    /// A volume type or medium coracle does not support.
    #[error("unsupported volume type {kind}")]
    Unsupported {
        /// The type, e.g. `persistentVolumeClaim`.
        kind: String,
    },
    /// A volume name that cannot be a directory name.
    #[error("invalid volume name {name:?}")]
    InvalidName {
        /// The name.
        name: String,
    },
}

/// Prepares every volume of `pod` under `pod_dir`. Idempotent: call it again after a restart
/// of coracle, or to refresh configMap, secret and downward API contents (only changed
/// volumes are rewritten, atomically; emptyDir contents and tmpfs mounts are kept).
pub fn setup_volumes(
    pod: &Pod,
    pod_dir: &Path,
    objects: &dyn ObjectSource,
    node: &NodeInfo,
) -> Result<PodVolumes, VolumeError> {
    let mut prepared = PodVolumes::default();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for volume in volumes {
        let setup = setup_one(pod, pod_dir, volume, objects, node, &mut prepared.warnings);
        let ready = setup.map_err(|source| VolumeError::SetUp {
            volume: volume.name.clone(),
            source,
        })?;
        debug!(volume = %volume.name, path = %ready.host_path.display(), "volume ready");
        prepared.volumes.insert(volume.name.clone(), ready);
    }
    Ok(prepared)
}

fn setup_one(
    pod: &Pod,
    pod_dir: &Path,
    volume: &Volume,
    objects: &dyn ObjectSource,
    node: &NodeInfo,
    warnings: &mut Vec<String>,
) -> Result<PodVolume, SetUpError> {
    let name = volume.name.as_str();
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(SetUpError::InvalidName {
            name: name.to_owned(),
        });
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let dir = |plugin: &str| {
        pod_dir
            .join("volumes")
            .join(format!("kubernetes.io~{plugin}"))
            .join(name)
    };

    if let Some(source) = &volume.empty_dir {
        return empty_dir::set_up(pod, &dir("empty-dir"), source, node);
    }
    if let Some(source) = &volume.host_path {
        return host_path::set_up(source);
    }
    if let Some(source) = &volume.config_map {
        return config_map::set_up(&dir("configmap"), namespace, source, objects);
    }
    if let Some(source) = &volume.secret {
        return secret::set_up(pod, &dir("secret"), namespace, source, objects, node);
    }
    if let Some(source) = &volume.downward_api {
        return downward_api_volume(pod, &dir("downward-api"), source, node);
    }
    if let Some(source) = &volume.projected {
        return projected::set_up(pod, &dir("projected"), source, objects, node, warnings);
    }
    Err(SetUpError::Unsupported {
        kind: source_kind(volume),
    })
}

/// A downwardAPI volume: its files on a tmpfs.
fn downward_api_volume(
    pod: &Pod,
    dir: &Path,
    source: &k8s_openapi::api::core::v1::DownwardAPIVolumeSource,
    node: &NodeInfo,
) -> Result<PodVolume, SetUpError> {
    empty_dir::set_up_tmpfs(pod, dir, None, node)?;
    let default_mode = mode_or_default(source.default_mode);
    let items = source.items.as_deref().unwrap_or_default();
    let payload = downward_api::collect_files(pod, items, default_mode, node)?;
    write_payload(dir, &payload)?;
    Ok(managed_volume(dir, VolumeKind::DownwardApi, true))
}

/// The name of the volume source for an unsupported volume, as in the API.
fn source_kind(volume: &Volume) -> String {
    let value = serde_json::to_value(volume).unwrap_or_default();
    value
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        .unwrap_or_else(|| "<none>".to_owned())
}

/// Removes every volume of the pod whose directory is `pod_dir`: tmpfs and other mounts below
/// `<pod_dir>/volumes` are detached first, then the directory tree is deleted. hostPath
/// content is never touched: hostPath volumes are not under `pod_dir`, and symlinks are
/// removed, not followed. Idempotent.
pub fn teardown_volumes(pod_dir: &Path) -> Result<(), VolumeError> {
    let volumes_dir = pod_dir.join("volumes");
    if !volumes_dir.exists() {
        return Ok(());
    }
    let failed = |source| VolumeError::TearDown {
        path: volumes_dir.clone(),
        source,
    };
    mount::unmount_all_below(&volumes_dir).map_err(failed)?;
    std::fs::remove_dir_all(&volumes_dir).map_err(failed)?;
    info!(path = %volumes_dir.display(), "pod volumes removed");
    Ok(())
}

fn mode_or_default(mode: Option<i32>) -> u32 {
    mode.map_or(DEFAULT_FILE_MODE, |m| m as u32 & 0o7777)
}

fn managed_volume(dir: &Path, kind: VolumeKind, tmpfs: bool) -> PodVolume {
    PodVolume {
        host_path: dir.to_path_buf(),
        kind,
        tmpfs,
        read_only: true,
    }
}

fn write_payload(dir: &Path, payload: &Payload) -> Result<(), SetUpError> {
    if atomic_writer::write(dir, payload)? {
        info!(volume = %dir.display(), files = payload.len(), "volume content written");
    }
    Ok(())
}

/// The files for a ConfigMap's or Secret's keys (upstream's `MakePayload`): every key when
/// `items` is empty, else the listed keys at their paths; a missing listed key is an error
/// unless the reference is `optional`.
fn project_keys(
    data: &BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    default_mode: u32,
    optional: bool,
    missing_key: impl Fn(&str) -> SetUpError,
) -> Result<Payload, SetUpError> {
    let mut payload = Payload::new();
    if items.is_empty() {
        for (key, value) in data {
            payload.insert(
                key.clone(),
                FileProjection {
                    data: value.clone(),
                    mode: default_mode,
                },
            );
        }
        return Ok(payload);
    }
    for item in items {
        let Some(value) = data.get(&item.key) else {
            if optional {
                continue;
            }
            return Err(missing_key(&item.key));
        };
        let mode = item.mode.map_or(default_mode, |m| m as u32 & 0o7777);
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: value.clone(),
                mode,
            },
        );
    }
    Ok(payload)
}
