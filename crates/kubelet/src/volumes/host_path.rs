//! `hostPath` volumes (upstream pkg/volume/hostpath): a path of the host used in place, after
//! the check its `type` asks for. Messages are upstream's (Kubernetes 1.30–1.33 wording).
//!
//! | type | check |
//! |---|---|
//! | unset or `""` | none |
//! | `DirectoryOrCreate` | create it (and missing parents) with mode 0755 if missing, then `Directory` |
//! | `Directory` | must be a directory |
//! | `FileOrCreate` | create an empty file with mode 0644 if missing (the parent must exist, as upstream), then `File` |
//! | `File` | must be a regular file |
//! | `Socket`, `CharDevice`, `BlockDevice` | must be one |
//!
//! Symlinks are followed, as upstream's checks use `stat`.

use std::fs::Metadata;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::HostPathVolumeSource;

use super::{PodVolume, SetUpError, VolumeKind};

/// Checks (or creates) the host path and returns it as the volume.
pub(crate) fn set_up(source: &HostPathVolumeSource) -> Result<PodVolume, SetUpError> {
    check_type(&source.path, source.type_.as_deref().unwrap_or(""))?;
    Ok(PodVolume {
        host_path: PathBuf::from(&source.path),
        kind: VolumeKind::HostPath,
        tmpfs: false,
        read_only: false,
    })
}

fn check_type(path: &str, type_: &str) -> Result<(), SetUpError> {
    let host = Path::new(path);
    let expect = |expected, matches: fn(&Metadata) -> bool| match std::fs::metadata(host) {
        Ok(meta) if matches(&meta) => Ok(()),
        _ => Err(SetUpError::HostPathType {
            path: path.to_owned(),
            expected,
        }),
    };
    let create_failed = |source| SetUpError::HostPathCreate {
        path: path.to_owned(),
        source,
    };

    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !host.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(host)
                    .map_err(create_failed)?;
                std::fs::set_permissions(host, std::fs::Permissions::from_mode(0o755))
                    .map_err(create_failed)?;
            }
            expect("directory", Metadata::is_dir)
        }
        "Directory" => expect("directory", Metadata::is_dir),
        "FileOrCreate" => {
            if !host.exists() {
                let created = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(host);
                created.map_err(create_failed)?;
            }
            expect("file", Metadata::is_file)
        }
        "File" => expect("file", Metadata::is_file),
        "Socket" => expect("socket file", |m| m.file_type().is_socket()),
        "CharDevice" => expect("character device", |m| m.file_type().is_char_device()),
        "BlockDevice" => expect("block device", |m| m.file_type().is_block_device()),
        other => Err(SetUpError::HostPathInvalidType {
            type_: other.to_owned(),
        }),
    }
}
