//! `projected` volumes (upstream pkg/volume/projected): configMap, secret and downwardAPI
//! sources merged into one directory on a tmpfs, each file with its item's mode or the
//! volume's `defaultMode` (0644), written with the atomic-writer layout.
//!
//! `serviceAccountToken` and `clusterTrustBundle` sources are skipped with a warning: coracle
//! has no API server to issue tokens or hold trust bundles yet, so the pod sees no such files.

use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, ProjectedVolumeSource};

use super::atomic_writer::Payload;
use super::{
    config_map, downward_api, empty_dir, mode_or_default, secret, write_payload, PodVolume,
    SetUpError, VolumeKind,
};
use crate::env::NodeInfo;
use crate::objects::ObjectSource;

/// Mounts a tmpfs at `dir` and writes every supported source's files into it.
pub(crate) fn set_up(
    pod: &Pod,
    dir: &Path,
    source: &ProjectedVolumeSource,
    objects: &dyn ObjectSource,
    node: &NodeInfo,
    warnings: &mut Vec<String>,
) -> Result<PodVolume, SetUpError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let default_mode = mode_or_default(source.default_mode);
    let volume = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let mut payload = Payload::new();
    for projection in source.sources.iter().flatten() {
        if let Some(cm) = &projection.config_map {
            let items = cm.items.as_deref().unwrap_or_default();
            payload.extend(config_map::payload(
                namespace,
                &cm.name,
                items,
                cm.optional,
                default_mode,
                objects,
            )?);
        }
        if let Some(s) = &projection.secret {
            let items = s.items.as_deref().unwrap_or_default();
            payload.extend(secret::payload(
                namespace,
                &s.name,
                items,
                s.optional,
                default_mode,
                objects,
            )?);
        }
        if let Some(api) = &projection.downward_api {
            let items = api.items.as_deref().unwrap_or_default();
            payload.extend(downward_api::collect_files(pod, items, default_mode, node)?);
        }
        if let Some(token) = &projection.service_account_token {
            warnings.push(format!(
                "projected volume {volume:?}: serviceAccountToken {:?} skipped: coracle issues no service account tokens",
                token.path
            ));
        }
        if let Some(bundle) = &projection.cluster_trust_bundle {
            warnings.push(format!(
                "projected volume {volume:?}: clusterTrustBundle {:?} skipped: coracle has no trust bundles",
                bundle.path
            ));
        }
    }

    empty_dir::set_up_tmpfs(pod, dir, None, node)?;
    write_payload(dir, &payload)?;
    Ok(super::managed_volume(dir, VolumeKind::Projected, true))
}
