//! `configMap` volumes (upstream pkg/volume/configmap): the ConfigMap's `data` and
//! `binaryData` keys as files (or only the listed `items`, at their paths), mode `defaultMode`
//! (0644) unless an item sets its own, written with the [`super::atomic_writer`] layout in a
//! 0777 directory on disk. A missing ConfigMap is an error unless `optional`, in which case the
//! volume is empty; so is a listed key the ConfigMap lacks.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, KeyToPath};

use super::atomic_writer::Payload;
use super::{
    empty_dir, mode_or_default, project_keys, write_payload, PodVolume, SetUpError, VolumeKind,
};
use crate::objects::ObjectSource;

/// Writes the ConfigMap's files into `dir`.
pub(crate) fn set_up(
    dir: &Path,
    namespace: &str,
    source: &ConfigMapVolumeSource,
    objects: &dyn ObjectSource,
) -> Result<PodVolume, SetUpError> {
    let items = source.items.as_deref().unwrap_or_default();
    let payload = payload(
        namespace,
        &source.name,
        items,
        source.optional,
        mode_or_default(source.default_mode),
        objects,
    )?;
    empty_dir::make_dir(dir)?;
    write_payload(dir, &payload)?;
    Ok(super::managed_volume(dir, VolumeKind::ConfigMap, false))
}

/// The files of a ConfigMap reference; shared with projected volumes.
pub(crate) fn payload(
    namespace: &str,
    name: &str,
    items: &[KeyToPath],
    optional: Option<bool>,
    default_mode: u32,
    objects: &dyn ObjectSource,
) -> Result<Payload, SetUpError> {
    let optional = optional.unwrap_or(false);
    let config_map = match objects.config_map(namespace, name) {
        Some(config_map) => config_map,
        None if optional => ConfigMap::default(),
        None => {
            return Err(SetUpError::ConfigMapNotFound {
                name: name.to_owned(),
            })
        }
    };
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in config_map.data.unwrap_or_default() {
        data.insert(key, value.into_bytes());
    }
    for (key, value) in config_map.binary_data.unwrap_or_default() {
        data.insert(key, value.0);
    }
    project_keys(&data, items, default_mode, optional, |key| {
        SetUpError::ConfigMapKeyMissing {
            key: key.to_owned(),
        }
    })
}
