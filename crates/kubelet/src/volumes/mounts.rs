//! The mounts of one container, from its `volumeMounts` (upstream's `makeMounts` in
//! pkg/kubelet/kubelet_pods.go), in `volumeMounts` order.
//!
//! - `subPathExpr` is expanded with the container's env only (`$(VAR)`, `$$` escapes `$`); a
//!   reference to an unset or empty variable is an error, as upstream.
//! - A subPath must be relative and free of `..`. Missing directories along it are created
//!   with the volume root's mode, one at a time, never following a symlink out of the volume.
//!   The mount source is the subPath's real path, which must stay inside the volume (a subPath
//!   of a configMap key therefore mounts the current file and, as upstream, does not see
//!   later updates).
//! - configMap, secret, downwardAPI and projected volumes are always read-only.
//! - `mountPropagation`: unset or `None` → private, `HostToContainer` → rslave,
//!   `Bidirectional` → rshared.
//!
//! # Differences from upstream
//! Upstream bind-mounts each subPath to a private place through an opened file descriptor so
//! that a container cannot swap a directory for a symlink between the check and the mount.
//! coracle checks the real path and returns it; a container that races the kubelet by
//! replacing a checked directory with a symlink before its next start could escape the volume.
//! `recursiveReadOnly` is not applied (a read-only mount is read-only at its top level only).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, VolumeMount};

use super::PodVolumes;
use crate::env::ConfigError;

/// How mounts below a mount point propagate between host and container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// No propagation (`None` or unset).
    #[default]
    Private,
    /// Host mounts appear in the container (`rslave`).
    HostToContainer,
    /// Both directions (`rshared`); upstream allows it only for privileged containers.
    Bidirectional,
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMount {
    /// What to bind-mount: the volume, or the real path of its subPath.
    pub host_path: PathBuf,
    /// Where, inside the container; always absolute.
    pub container_path: String,
    /// Whether the mount is read-only.
    pub read_only: bool,
    /// Mount propagation.
    pub propagation: Propagation,
}

/// The mounts of `container`, in `volumeMounts` order. `env` is the container's resolved
/// environment (a name may repeat; the last value wins), used for `subPathExpr`.
pub fn container_mounts(
    _pod: &Pod,
    container: &Container,
    volumes: &PodVolumes,
    env: &[(String, String)],
) -> Result<Vec<ContainerMount>, ConfigError> {
    let env: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut mounts = Vec::new();
    for volume_mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.get(&volume_mount.name) else {
            return Err(ConfigError::VolumeNotFound {
                volume: volume_mount.name.clone(),
                container: container.name.clone(),
            });
        };

        let sub_path = sub_path_of(volume_mount, &env)?;
        let host_path = match sub_path.as_deref() {
            None | Some("") => volume.host_path.clone(),
            Some(sub_path) => prepare_sub_path(&volume.host_path, sub_path).map_err(|source| {
                ConfigError::SubPathPrepare {
                    volume: volume_mount.name.clone(),
                    container: container.name.clone(),
                    source,
                }
            })?,
        };

        let container_path = match volume_mount.mount_path.starts_with('/') {
            true => volume_mount.mount_path.clone(),
            false => format!("/{}", volume_mount.mount_path),
        };
        mounts.push(ContainerMount {
            host_path,
            container_path,
            read_only: volume_mount.read_only.unwrap_or(false) || volume.read_only,
            propagation: propagation(volume_mount.mount_propagation.as_deref())?,
        });
    }
    Ok(mounts)
}

/// The subPath (expanded from subPathExpr if given), checked to be relative without `..`.
fn sub_path_of(
    mount: &VolumeMount,
    env: &BTreeMap<&str, &str>,
) -> Result<Option<String>, ConfigError> {
    let sub_path = match mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        Some(expr) => Some(expand_sub_path_expr(expr, env)?),
        None => mount.sub_path.clone(),
    };
    let Some(sub_path) = sub_path.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if sub_path.starts_with('/') {
        return Err(ConfigError::SubPathAbsolute { sub_path });
    }
    if Path::new(&sub_path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(ConfigError::SubPathBacksteps { sub_path });
    }
    Ok(Some(sub_path))
}

/// Expands `$(VAR)` with `env`; every unset or empty variable is reported, sorted.
fn expand_sub_path_expr(expr: &str, env: &BTreeMap<&str, &str>) -> Result<String, ConfigError> {
    let mut missing = BTreeSet::new();
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if after.is_empty() {
            out.push('$');
            rest = after;
        } else if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|a| a.split_once(')')) {
            let value = env.get(name).copied().unwrap_or("");
            if value.is_empty() {
                missing.insert(name.to_owned());
            }
            out.push_str(value);
            rest = tail;
        } else {
            // Not a reference (`$x`, or an unclosed `$(`): kept as written.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if !missing.is_empty() {
        let names: Vec<String> = missing.into_iter().collect();
        return Err(ConfigError::SubPathExprMissing {
            names: names.join(", "),
        });
    }
    Ok(out)
}

fn propagation(mode: Option<&str>) -> Result<Propagation, ConfigError> {
    match mode {
        None | Some("None") => Ok(Propagation::Private),
        Some("HostToContainer") => Ok(Propagation::HostToContainer),
        Some("Bidirectional") => Ok(Propagation::Bidirectional),
        Some(other) => Err(ConfigError::InvalidPropagation {
            mode: other.to_owned(),
        }),
    }
}

/// Creates the missing directories of `sub_path` inside `volume` and returns its real path,
/// refusing any step that resolves outside the volume.
fn prepare_sub_path(volume: &Path, sub_path: &str) -> io::Result<PathBuf> {
    let root = volume.canonicalize()?;
    let mode = root.metadata()?.permissions().mode() & 0o7777;
    let escapes = |path: &Path| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "subPath {sub_path:?} resolves to {} outside the volume",
                path.display()
            ),
        )
    };

    let mut current = root.clone();
    for component in Path::new(sub_path).components() {
        let Component::Normal(part) = component else {
            continue;
        };
        let next = current.join(part);
        match next.symlink_metadata() {
            Ok(_) => {
                let real = next.canonicalize()?;
                if !real.starts_with(&root) {
                    return Err(escapes(&real));
                }
                current = real;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new().mode(mode).create(&next)?;
                std::fs::set_permissions(&next, std::fs::Permissions::from_mode(mode))?;
                current = next;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> BTreeMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn sub_path_expr_expands_env_references() {
        let env = env(&[("POD", "web-0"), ("NS", "prod")]);
        assert_eq!(
            expand_sub_path_expr("logs/$(NS)/$(POD)", &env).unwrap(),
            "logs/prod/web-0"
        );
        assert_eq!(expand_sub_path_expr("a$$(POD)", &env).unwrap(), "a$(POD)");
        assert_eq!(expand_sub_path_expr("$x/$(POD", &env).unwrap(), "$x/$(POD");
        assert_eq!(expand_sub_path_expr("end$", &env).unwrap(), "end$");
    }

    #[test]
    fn sub_path_expr_reports_every_missing_or_empty_variable() {
        let env = env(&[("EMPTY", "")]);
        let err = expand_sub_path_expr("$(ZED)/$(EMPTY)/$(ZED)", &env).unwrap_err();
        assert_eq!(err.to_string(), "missing value for EMPTY, ZED");
    }

    #[test]
    fn propagation_modes_map_like_upstream() {
        assert_eq!(propagation(None).unwrap(), Propagation::Private);
        assert_eq!(propagation(Some("None")).unwrap(), Propagation::Private);
        assert_eq!(
            propagation(Some("HostToContainer")).unwrap(),
            Propagation::HostToContainer
        );
        assert_eq!(
            propagation(Some("Bidirectional")).unwrap(),
            Propagation::Bidirectional
        );
        let err = propagation(Some("Shared")).unwrap_err();
        assert_eq!(err.to_string(), "invalid MountPropagation mode: \"Shared\"");
    }
}
