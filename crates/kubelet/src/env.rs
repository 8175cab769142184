//! A container's environment, resolved the way upstream's kubelet does it in
//! `makeEnvironmentVariables` (pkg/kubelet/kubelet_pods.go).
//!
//! Order of the result: first every `envFrom` source, in order (configMapRef / secretRef, keys
//! sorted, `prefix` prepended, a later source replacing an earlier one's key), then every `env`
//! entry in order. `env` entries are kept even when they repeat a name: the last occurrence wins.
//! Values are *not* `$(VAR)`-expanded here; the runtime crate expands the ordered list
//! (`coracle_runtime::command::expand_env`), so that each value sees the entries before it.
//!
//! # Differences from upstream
//! - Upstream expands only literal `value`s; the runtime expands every entry, so a ConfigMap
//!   value that itself contains `$(X)` is expanded in coracle and not upstream.
//! - No service-link variables (`<SVC>_SERVICE_HOST`, `KUBERNETES_SERVICE_HOST`…): coracle has
//!   no Services yet, so a pod sees none of them, whatever `enableServiceLinks` says.
//! - Keys of an `envFrom` source are checked with the relaxed rule of Kubernetes 1.30+
//!   (printable ASCII except `=`), which upstream's API validation applies. A key failing it is
//!   skipped with upstream's `InvalidEnvironmentVariableNames` event text, returned in
//!   [`ResolvedEnv::warnings`]. Upstream 1.33 with default feature gates skips nothing, so a
//!   key like `1badkey` reaches the container in both.
//! - Pod IPs come from the pod's `status.podIPs` / `status.podIP`, which the engine must fill in
//!   before resolving (upstream passes the sandbox's IPs alongside the pod).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVarSource, Pod};

use crate::objects::ObjectSource;
use crate::volumes::downward_api::{metadata_field_value, resource_field_value};
use crate::volumes::quantity::QuantityError;

/// What the kubelet knows about the node it runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `spec.nodeName` of the pods it runs.
    pub node_name: String,
    /// The node's address, for `status.hostIP` and `status.hostIPs`.
    pub host_ip: String,
    /// Allocatable CPUs: the value of an unset `limits.cpu`.
    pub cpus: u32,
    /// Allocatable memory in bytes: the value of an unset `limits.memory` and the size of a
    /// `medium: Memory` emptyDir without a smaller limit. 0 means unknown (no limit).
    pub memory_bytes: u64,
}

/// The resolved environment of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedEnv {
    /// `(name, raw value)` in definition order; a later entry with the same name wins.
    pub vars: Vec<(String, String)>,
    /// Messages for `InvalidEnvironmentVariableNames` Warning events on the pod.
    pub warnings: Vec<String>,
}

/// A container cannot be configured: upstream reports these as `CreateContainerConfigError`
/// (env) or as a failed mount preparation (volume mounts), and retries on the next sync.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A non-optional ConfigMap reference names a missing ConfigMap.
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound {
        /// The ConfigMap's name.
        name: String,
    },
    /// A non-optional `configMapKeyRef` names a missing key.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// The pod's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A non-optional Secret reference names a missing Secret.
    #[error("secret {name:?} not found")]
    SecretNotFound {
        /// The Secret's name.
        name: String,
    },
    /// A non-optional `secretKeyRef` names a missing key.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// The pod's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A `fieldRef` names a field the downward API does not offer.
    #[error("unsupported fieldPath: {field_path}")]
    UnsupportedFieldPath {
        /// The requested path.
        field_path: String,
    },
    /// A `resourceFieldRef` names a resource the downward API does not offer.
    #[error("unsupported container resource : {resource}")]
    UnsupportedResource {
        /// The requested resource, e.g. `limits.gpu`.
        resource: String,
    },
    /// A `resourceFieldRef.containerName` names no container of the pod.
    #[error("container {container} not found")]
    ContainerNotFound {
        /// The requested container.
        container: String,
    },
    /// A resource limit, request or divisor is not a valid quantity.
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    /// A volumeMount names a volume the pod does not have.
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    VolumeNotFound {
        /// The volume name of the volumeMount.
        volume: String,
        /// The container.
        container: String,
    },
    /// A subPath (or expanded subPathExpr) is absolute.
    #[error("error SubPath `{sub_path}` must not be an absolute path")]
    SubPathAbsolute {
        /// The subPath.
        sub_path: String,
    },
    /// A subPath contains a `..` element.
    #[error("unable to provision SubPath `{sub_path}`: must not contain '..'")]
    SubPathBacksteps {
        /// The subPath.
        sub_path: String,
    },
    /// A subPathExpr references variables that are unset or empty.
    #[error("missing value for {names}")]
    SubPathExprMissing {
        /// The variable names, sorted and joined with `, `.
        names: String,
    },
    /// The subPath could not be created or resolves outside its volume.
    #[error("failed to prepare subPath for volumeMount {volume:?} of container {container:?}")]
    SubPathPrepare {
        /// The volume name of the volumeMount.
        volume: String,
        /// The container.
        container: String,
        /// What went wrong (upstream keeps this detail out of the user-visible message).
        #[source]
        source: std::io::Error,
    },
    /// `mountPropagation` is not one of None, HostToContainer, Bidirectional.
    #[error("invalid MountPropagation mode: {mode:?}")]
    InvalidPropagation {
        /// The rejected mode.
        mode: String,
    },
}

/// Resolves `container`'s environment: `envFrom` sources, then `env` entries (see module docs).
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    objects: &dyn ObjectSource,
    node: &NodeInfo,
) -> Result<ResolvedEnv, ConfigError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut resolved = ResolvedEnv::default();

    // envFrom: a later source replaces an earlier one's key; no source is expanded.
    let mut from_sources: Vec<(String, String)> = Vec::new();
    for source in container.env_from.iter().flatten() {
        for (name, value) in env_from_source(namespace, source, objects, &mut resolved.warnings)? {
            match from_sources
                .iter_mut()
                .find(|(existing, _)| *existing == name)
            {
                Some(entry) => entry.1 = value,
                None => from_sources.push((name, value)),
            }
        }
    }
    resolved.vars = from_sources;

    // env: literal values stay raw; valueFrom sources are resolved; optional misses are skipped.
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) if !value.is_empty() => Some(value.clone()),
            (_, Some(source)) => value_from(pod, container, namespace, source, objects, node)?,
            _ => Some(String::new()),
        };
        if let Some(value) = value {
            resolved.vars.push((var.name.clone(), value));
        }
    }
    Ok(resolved)
}

/// The entries of one `envFrom` source, keys sorted; `None`-optional misses give nothing.
fn env_from_source(
    namespace: &str,
    source: &EnvFromSource,
    objects: &dyn ObjectSource,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let prefix = source.prefix.as_deref().unwrap_or("");
    let (kind, name, entries) = if let Some(cm_ref) = &source.config_map_ref {
        let optional = cm_ref.optional.unwrap_or(false);
        let Some(cm) = objects.config_map(namespace, &cm_ref.name) else {
            if optional {
                return Ok(Vec::new());
            }
            return Err(ConfigError::ConfigMapNotFound {
                name: cm_ref.name.clone(),
            });
        };
        let entries: BTreeMap<String, String> = cm.data.unwrap_or_default();
        ("configMap", &cm_ref.name, entries)
    } else if let Some(secret_ref) = &source.secret_ref {
        let optional = secret_ref.optional.unwrap_or(false);
        let Some(secret) = objects.secret(namespace, &secret_ref.name) else {
            if optional {
                return Ok(Vec::new());
            }
            return Err(ConfigError::SecretNotFound {
                name: secret_ref.name.clone(),
            });
        };
        let entries = secret.data.unwrap_or_default().into_iter();
        let entries = entries.map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()));
        ("secret", &secret_ref.name, entries.collect())
    } else {
        return Ok(Vec::new());
    };

    let mut vars = Vec::with_capacity(entries.len());
    let mut invalid = Vec::new();
    for (key, value) in entries {
        let name = format!("{prefix}{key}");
        if is_env_var_name(&name) {
            vars.push((name, value));
        } else {
            invalid.push(name);
        }
    }
    if !invalid.is_empty() {
        warnings.push(format!(
            "Keys [{}] from the EnvFrom {kind} {namespace}/{name} were skipped since they are \
             considered invalid environment variable names.",
            invalid.join(", ")
        ));
    }
    Ok(vars)
}

/// Kubernetes' relaxed env var name rule: non-empty printable ASCII without `=`.
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The value of one `valueFrom`; `Ok(None)` when an optional reference is missing.
fn value_from(
    pod: &Pod,
    container: &Container,
    namespace: &str,
    source: &EnvVarSource,
    objects: &dyn ObjectSource,
    node: &NodeInfo,
) -> Result<Option<String>, ConfigError> {
    if let Some(field) = &source.field_ref {
        return pod_field_value(pod, &field.field_path, node).map(Some);
    }
    if let Some(selector) = &source.resource_field_ref {
        return resource_field_value(pod, Some(container), selector, node).map(Some);
    }
    if let Some(key_ref) = &source.config_map_key_ref {
        let optional = key_ref.optional.unwrap_or(false);
        let Some(cm) = objects.config_map(namespace, &key_ref.name) else {
            if optional {
                return Ok(None);
            }
            return Err(ConfigError::ConfigMapNotFound {
                name: key_ref.name.clone(),
            });
        };
        return match cm.data.unwrap_or_default().remove(&key_ref.key) {
            Some(value) => Ok(Some(value)),
            None if optional => Ok(None),
            None => Err(ConfigError::ConfigMapKeyNotFound {
                namespace: namespace.to_owned(),
                name: key_ref.name.clone(),
                key: key_ref.key.clone(),
            }),
        };
    }
    if let Some(key_ref) = &source.secret_key_ref {
        let optional = key_ref.optional.unwrap_or(false);
        let Some(secret) = objects.secret(namespace, &key_ref.name) else {
            if optional {
                return Ok(None);
            }
            return Err(ConfigError::SecretNotFound {
                name: key_ref.name.clone(),
            });
        };
        return match secret.data.unwrap_or_default().remove(&key_ref.key) {
            Some(value) => Ok(Some(String::from_utf8_lossy(&value.0).into_owned())),
            None if optional => Ok(None),
            None => Err(ConfigError::SecretKeyNotFound {
                namespace: namespace.to_owned(),
                name: key_ref.name.clone(),
                key: key_ref.key.clone(),
            }),
        };
    }
    Ok(Some(String::new()))
}

/// A `fieldRef` for env (upstream's `podFieldSelectorRuntimeValue`): the spec and status fields
/// first, then the metadata fields shared with downwardAPI volumes.
fn pod_field_value(pod: &Pod, field_path: &str, node: &NodeInfo) -> Result<String, ConfigError> {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let mut pod_ips: Vec<String> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().map(|ip| ip.ip.clone()).collect())
        .unwrap_or_default();
    if pod_ips.is_empty() {
        pod_ips.extend(status.and_then(|s| s.pod_ip.clone()));
    }

    match field_path {
        "spec.nodeName" => Ok(spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| node.node_name.clone())),
        "spec.serviceAccountName" => Ok(spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default()),
        "status.hostIP" | "status.hostIPs" => Ok(node.host_ip.clone()),
        "status.podIP" => Ok(pod_ips.first().cloned().unwrap_or_default()),
        "status.podIPs" => Ok(pod_ips.join(",")),
        _ => metadata_field_value(pod, field_path),
    }
}
