//! `spec.volumes`: unique DNS-1123 names and exactly one source, with source-specific checks
//! for the sources coracle can serve (emptyDir, hostPath, configMap, secret, …).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{KeyToPath, Volume};

use super::container::local_descending_path;
use super::meta::dns1123_label;
use super::resources::parse_quantity;
use super::{FieldError, Path};

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

/// Validates the volumes and returns the names of those that passed (mounts may refer to them).
pub(crate) fn validate_volumes(
    volumes: &[Volume],
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, vol) in volumes.iter().enumerate() {
        let p = path.index(i);
        let mut own = Vec::new();
        validate_source(vol, &p, &mut own);
        if vol.name.is_empty() {
            own.push(FieldError::required(p.child("name"), ""));
        } else {
            for msg in dns1123_label(&vol.name) {
                own.push(FieldError::invalid(p.child("name"), &vol.name, &msg));
            }
        }
        if names.contains(&vol.name) {
            own.push(FieldError::duplicate(p.child("name"), &vol.name));
        }
        if own.is_empty() {
            names.insert(vol.name.clone());
        }
        errs.extend(own);
    }
    names
}

/// The volume source fields in upstream's order, with whether each is set.
fn sources(v: &Volume) -> [(&'static str, bool); 30] {
    [
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("configMap", v.config_map.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("storageos", v.storageos.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ]
}

fn validate_source(v: &Volume, p: &Path, errs: &mut Vec<FieldError>) {
    let mut chosen = None;
    for (field, present) in sources(v) {
        if !present {
            continue;
        }
        if chosen.is_some() {
            errs.push(FieldError::forbidden(
                p.child(field),
                "may not specify more than 1 volume type",
            ));
        } else {
            chosen = Some(field);
        }
    }
    let Some(chosen) = chosen else {
        errs.push(FieldError::required(
            p.clone(),
            "must specify a volume type",
        ));
        return;
    };

    let sp = p.child(chosen);
    match chosen {
        "emptyDir" => {
            let size = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref());
            if size.is_some_and(|q| parse_quantity(&q.0).is_ok_and(|n| n < 0)) {
                errs.push(FieldError::forbidden(
                    sp.child("sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
        "hostPath" => {
            let Some(hp) = &v.host_path else { return };
            if hp.path.is_empty() {
                errs.push(FieldError::required(sp.child("path"), ""));
            } else if hp.path.split('/').any(|part| part == "..") {
                errs.push(FieldError::invalid(
                    sp.child("path"),
                    &hp.path,
                    "must not contain '..'",
                ));
            }
            let kind = hp.type_.as_deref().unwrap_or("");
            if !HOST_PATH_TYPES.contains(&kind) {
                errs.push(FieldError::not_supported(
                    sp.child("type"),
                    kind,
                    HOST_PATH_TYPES,
                ));
            }
        }
        "secret" => {
            let Some(s) = &v.secret else { return };
            if s.secret_name.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(sp.child("secretName"), ""));
            }
            file_mode(s.default_mode, &sp.child("defaultMode"), errs);
            key_to_paths(
                s.items.as_deref().unwrap_or_default(),
                &sp.child("items"),
                errs,
            );
        }
        "configMap" => {
            let Some(c) = &v.config_map else { return };
            if c.name.is_empty() {
                errs.push(FieldError::required(sp.child("name"), ""));
            }
            file_mode(c.default_mode, &sp.child("defaultMode"), errs);
            key_to_paths(
                c.items.as_deref().unwrap_or_default(),
                &sp.child("items"),
                errs,
            );
        }
        "persistentVolumeClaim" => {
            let claim = v
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str());
            if claim.unwrap_or("").is_empty() {
                errs.push(FieldError::required(sp.child("claimName"), ""));
            }
        }
        "nfs" => {
            let Some(n) = &v.nfs else { return };
            if n.server.is_empty() {
                errs.push(FieldError::required(sp.child("server"), ""));
            }
            if n.path.is_empty() {
                errs.push(FieldError::required(sp.child("path"), ""));
            } else if !n.path.starts_with('/') {
                errs.push(FieldError::invalid(
                    sp.child("path"),
                    &n.path,
                    "must be an absolute path",
                ));
            }
        }
        _ => {}
    }
}

fn file_mode(mode: Option<i32>, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        errs.push(FieldError::invalid_int(
            path.clone(),
            m.into(),
            FILE_MODE_MSG,
        ));
    }
}

fn key_to_paths(items: &[KeyToPath], path: &Path, errs: &mut Vec<FieldError>) {
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        if item.key.is_empty() {
            errs.push(FieldError::required(p.child("key"), ""));
        }
        if item.path.is_empty() {
            errs.push(FieldError::required(p.child("path"), ""));
        } else {
            local_descending_path(&item.path, &p.child("path"), errs);
            if item.path.starts_with("..") {
                errs.push(FieldError::invalid(
                    p.child("path"),
                    &item.path,
                    "must not start with '..'",
                ));
            }
        }
        file_mode(item.mode, &p.child("mode"), errs);
    }
}
