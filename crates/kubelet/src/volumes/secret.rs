//! `secret` volumes (upstream pkg/volume/secret): like configMap volumes (keys or `items` as
//! files, `defaultMode` 0644, `optional`, the atomic-writer layout) but on a tmpfs, so that
//! secret data never reaches the disk.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{KeyToPath, Pod, SecretVolumeSource};

use super::atomic_writer::Payload;
use super::{
    empty_dir, mode_or_default, project_keys, write_payload, PodVolume, SetUpError, VolumeKind,
};
use crate::env::NodeInfo;
use crate::objects::ObjectSource;

/// Mounts a tmpfs at `dir` and writes the Secret's files into it.
pub(crate) fn set_up(
    pod: &Pod,
    dir: &Path,
    namespace: &str,
    source: &SecretVolumeSource,
    objects: &dyn ObjectSource,
    node: &NodeInfo,
) -> Result<PodVolume, SetUpError> {
    let name = source.secret_name.as_deref().unwrap_or_default();
    let items = source.items.as_deref().unwrap_or_default();
    let payload = payload(
        namespace,
        name,
        items,
        source.optional,
        mode_or_default(source.default_mode),
        objects,
    )?;
    empty_dir::set_up_tmpfs(pod, dir, None, node)?;
    write_payload(dir, &payload)?;
    Ok(super::managed_volume(dir, VolumeKind::Secret, true))
}

/// The files of a Secret reference; shared with projected volumes.
pub(crate) fn payload(
    namespace: &str,
    name: &str,
    items: &[KeyToPath],
    optional: Option<bool>,
    default_mode: u32,
    objects: &dyn ObjectSource,
) -> Result<Payload, SetUpError> {
    let optional = optional.unwrap_or(false);
    let data: BTreeMap<String, Vec<u8>> = match objects.secret(namespace, name) {
        Some(secret) => secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
        None if optional => BTreeMap::new(),
        None => {
            return Err(SetUpError::SecretNotFound {
                name: name.to_owned(),
            })
        }
    };
    project_keys(&data, items, default_mode, optional, |key| {
        SetUpError::SecretKeyMissing {
            key: key.to_owned(),
        }
    })
}
