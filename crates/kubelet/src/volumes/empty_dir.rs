//! `emptyDir` volumes (upstream pkg/volume/emptydir): a directory with mode 0777 on disk, or
//! with `medium: Memory` a tmpfs mounted on it (the tmpfs root then has the kernel's default
//! mode 1777). Secret, downwardAPI and projected volumes use the tmpfs form too, as upstream
//! wraps them in a memory-backed emptyDir.
//!
//! The tmpfs size follows upstream's `calculateEmptyDirMemorySize`: the node's allocatable
//! memory, lowered to the pod's memory limit when every container declares one, lowered to
//! `sizeLimit` when that is smaller. With unknown node memory and no limit, the tmpfs gets the
//! kernel's default size (half of RAM). A disk emptyDir's `sizeLimit` is not enforced (upstream
//! evicts the pod when it is exceeded; coracle has no eviction).
//!
//! Set-up is idempotent: an existing directory keeps its content and an existing tmpfs is not
//! mounted again (checked in the mount table).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, Pod};

use super::quantity::Quantity;
use super::{mount, PodVolume, SetUpError, VolumeKind};
use crate::env::NodeInfo;

/// The mode of an emptyDir's directory.
const DIR_MODE: u32 = 0o777;

/// Prepares an emptyDir at `dir`.
pub(crate) fn set_up(
    pod: &Pod,
    dir: &Path,
    source: &EmptyDirVolumeSource,
    node: &NodeInfo,
) -> Result<PodVolume, SetUpError> {
    let size_limit = source
        .size_limit
        .as_ref()
        .map(|q| Quantity::parse(&q.0))
        .transpose()?;
    let tmpfs = match source.medium.as_deref().unwrap_or("") {
        "" => {
            make_dir(dir)?;
            false
        }
        "Memory" => {
            set_up_tmpfs(pod, dir, size_limit, node)?;
            true
        }
        other => {
            return Err(SetUpError::Unsupported {
                kind: format!("emptyDir medium {other}"),
            })
        }
    };
    Ok(PodVolume {
        host_path: dir.to_path_buf(),
        kind: VolumeKind::EmptyDir,
        tmpfs,
        read_only: false,
    })
}

/// Creates `dir` (0777) and mounts a tmpfs on it unless one is already there.
pub(crate) fn set_up_tmpfs(
    pod: &Pod,
    dir: &Path,
    size_limit: Option<Quantity>,
    node: &NodeInfo,
) -> Result<(), SetUpError> {
    make_dir(dir)?;
    if mount::is_tmpfs_mount(dir).map_err(SetUpError::MountTable)? {
        return Ok(());
    }
    let size = memory_volume_size(pod, size_limit, node);
    mount::mount_tmpfs(dir, size).map_err(|source| SetUpError::MountTmpfs {
        path: dir.to_path_buf(),
        source,
    })
}

pub(crate) fn make_dir(dir: &Path) -> Result<(), SetUpError> {
    let failed = |source| SetUpError::CreateDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir.parent().unwrap_or(dir))
        .map_err(failed)?;
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(failed(e)),
    }
    // Set the mode after creating so that the umask does not narrow it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)).map_err(failed)
}

/// The tmpfs size in bytes, or `None` for the kernel's default (see the module docs).
pub(crate) fn memory_volume_size(
    pod: &Pod,
    size_limit: Option<Quantity>,
    node: &NodeInfo,
) -> Option<u64> {
    let mut size = (node.memory_bytes > 0).then_some(node.memory_bytes);
    let mut lower_to = |candidate: u64| {
        if candidate > 0 && size.is_none_or(|current| candidate <= current) {
            size = Some(candidate);
        }
    };
    if let Some(pod_limit) = pod_memory_limit(pod) {
        lower_to(pod_limit);
    }
    if let Some(limit) = size_limit {
        lower_to(u64::try_from(limit.value()).unwrap_or(0));
    }
    size
}

/// The pod's memory limit when every container declares one: the sum over app containers and
/// sidecars, or the largest regular init container's limit if that is higher.
fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let limit_of = |c: &Container| -> Option<u64> {
        let quantity = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
        u64::try_from(Quantity::parse(&quantity.0).ok()?.value()).ok()
    };
    let mut running = 0u64;
    let mut init_peak = 0u64;
    for container in &spec.containers {
        running = running.saturating_add(limit_of(container)?);
    }
    for init in spec.init_containers.iter().flatten() {
        let limit = limit_of(init)?;
        if init.restart_policy.as_deref() == Some("Always") {
            running = running.saturating_add(limit);
        } else {
            init_peak = init_peak.max(limit);
        }
    }
    Some(running.max(init_peak))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

    fn pod_with_limits(limits: &[Option<&str>]) -> Pod {
        let containers = limits
            .iter()
            .enumerate()
            .map(|(i, limit)| Container {
                name: format!("c{i}"),
                resources: limit.map(|l| ResourceRequirements {
                    limits: Some([("memory".to_owned(), K8sQuantity(l.to_owned()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        Pod {
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(memory_bytes: u64) -> NodeInfo {
        NodeInfo {
            memory_bytes,
            ..Default::default()
        }
    }

    #[test]
    fn memory_volume_defaults_to_node_memory() {
        let pod = pod_with_limits(&[None]);
        assert_eq!(
            memory_volume_size(&pod, None, &node(8 << 30)),
            Some(8 << 30)
        );
        assert_eq!(memory_volume_size(&pod, None, &node(0)), None);
    }

    #[test]
    fn memory_volume_is_capped_by_pod_limit_when_all_containers_declare_one() {
        let all = pod_with_limits(&[Some("1Gi"), Some("512Mi")]);
        assert_eq!(
            memory_volume_size(&all, None, &node(8 << 30)),
            Some(1536 << 20)
        );
        let partial = pod_with_limits(&[Some("1Gi"), None]);
        assert_eq!(
            memory_volume_size(&partial, None, &node(8 << 30)),
            Some(8 << 30)
        );
    }

    #[test]
    fn size_limit_applies_only_when_smaller() {
        let pod = pod_with_limits(&[Some("1Gi")]);
        let small = Quantity::parse("64Mi").ok();
        assert_eq!(
            memory_volume_size(&pod, small, &node(8 << 30)),
            Some(64 << 20)
        );
        let large = Quantity::parse("4Gi").ok();
        assert_eq!(
            memory_volume_size(&pod, large, &node(8 << 30)),
            Some(1 << 30)
        );
    }
}
