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
//!   [`ResolvedEnv::warnings`]. Older kubelets (before relaxed names) also skipped keys such as
//!   `1badkey` or `app.properties`; current upstream passes them through, and so does coracle.
//! - Secret values that are not UTF-8 are converted lossily (the env is a list of `String`s).
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, EnvVar, ObjectFieldSelector, PodIP,
        PodSpec, PodStatus, ResourceFieldSelector, ResourceRequirements, Secret, SecretEnvSource,
        SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    use super::*;
    use crate::objects::StaticObjects;

    fn objects() -> StaticObjects {
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some("cfg".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                ("LEVEL".to_owned(), "debug".to_owned()),
                ("MODE".to_owned(), "fast".to_owned()),
                ("bad=key".to_owned(), "x".to_owned()),
            ])),
            ..Default::default()
        };
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("creds".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "PASSWORD".to_owned(),
                ByteString(b"hunter2".to_vec()),
            )])),
            ..Default::default()
        };
        StaticObjects::new(vec![config_map], vec![secret])
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("1234-abcd".into()),
                labels: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
                annotations: Some(BTreeMap::from([("note".to_owned(), "hi".to_owned())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("robot".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("10.88.0.5".into()),
                pod_ips: Some(vec![
                    PodIP {
                        ip: "10.88.0.5".into(),
                    },
                    PodIP {
                        ip: "fd00::5".into(),
                    },
                ]),
                ..Default::default()
            }),
        }
    }

    fn node() -> NodeInfo {
        NodeInfo {
            node_name: "box".into(),
            host_ip: "192.168.1.10".into(),
            cpus: 2,
            memory_bytes: 8 << 30,
        }
    }

    fn var(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    fn field(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..Default::default()
        }
    }

    fn resource(resource: &str, divisor: Option<&str>) -> EnvVarSource {
        EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
                container_name: None,
            }),
            ..Default::default()
        }
    }

    fn cm_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: name.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn secret_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
        EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.into(),
                key: key.into(),
                optional,
            }),
            ..Default::default()
        }
    }

    fn resolve(container: &Container) -> Result<ResolvedEnv, ConfigError> {
        resolve_env(&pod(), container, &objects(), &node())
    }

    fn one(source: EnvVarSource) -> String {
        let container = Container {
            name: "app".into(),
            env: Some(vec![var("X", source)]),
            ..Default::default()
        };
        let resolved = resolve(&container).unwrap();
        assert_eq!(resolved.vars.len(), 1);
        resolved.vars[0].1.clone()
    }

    fn error(source: EnvVarSource) -> String {
        let container = Container {
            name: "app".into(),
            env: Some(vec![var("X", source)]),
            ..Default::default()
        };
        resolve(&container).unwrap_err().to_string()
    }

    #[test]
    fn env_from_comes_first_with_prefix_and_env_keeps_raw_values_in_order() {
        let container = Container {
            name: "app".into(),
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cfg".into(),
                        optional: None,
                    }),
                    prefix: Some("CFG_".into()),
                    secret_ref: None,
                },
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "creds".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ]),
            env: Some(vec![
                EnvVar {
                    name: "GREETING".into(),
                    value: Some("hi $(CFG_MODE)".into()),
                    value_from: None,
                },
                EnvVar {
                    name: "EMPTY".into(),
                    value: None,
                    value_from: None,
                },
                EnvVar {
                    name: "CFG_MODE".into(),
                    value: Some("slow".into()),
                    value_from: None,
                },
            ]),
            ..Default::default()
        };
        let resolved = resolve(&container).unwrap();
        let pairs: Vec<(&str, &str)> = resolved
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("CFG_LEVEL", "debug"),
                ("CFG_MODE", "fast"),
                ("PASSWORD", "hunter2"),
                ("GREETING", "hi $(CFG_MODE)"),
                ("EMPTY", ""),
                ("CFG_MODE", "slow"),
            ]
        );
        assert_eq!(
            resolved.warnings,
            ["Keys [CFG_bad=key] from the EnvFrom configMap default/cfg were skipped since they are \
              considered invalid environment variable names."]
        );
    }

    #[test]
    fn env_from_missing_sources_fail_unless_optional() {
        let from = |cm: Option<bool>, secret: bool| EnvFromSource {
            config_map_ref: (!secret).then(|| ConfigMapEnvSource {
                name: "nope".into(),
                optional: cm,
            }),
            secret_ref: secret.then(|| SecretEnvSource {
                name: "nope".into(),
                optional: cm,
            }),
            prefix: None,
        };
        let container = |source| Container {
            name: "app".into(),
            env_from: Some(vec![source]),
            ..Default::default()
        };
        assert_eq!(
            resolve(&container(from(None, false)))
                .unwrap_err()
                .to_string(),
            "configmap \"nope\" not found"
        );
        assert_eq!(
            resolve(&container(from(None, true)))
                .unwrap_err()
                .to_string(),
            "secret \"nope\" not found"
        );
        assert!(resolve(&container(from(Some(true), false)))
            .unwrap()
            .vars
            .is_empty());
        assert!(resolve(&container(from(Some(true), true)))
            .unwrap()
            .vars
            .is_empty());
    }

    #[test]
    fn field_refs_give_pod_and_node_fields() {
        assert_eq!(one(field("metadata.name")), "web");
        assert_eq!(one(field("metadata.namespace")), "default");
        assert_eq!(one(field("metadata.uid")), "1234-abcd");
        assert_eq!(one(field("metadata.labels['app']")), "web");
        assert_eq!(one(field("metadata.annotations['note']")), "hi");
        assert_eq!(one(field("metadata.annotations['absent']")), "");
        assert_eq!(one(field("spec.nodeName")), "box");
        assert_eq!(one(field("spec.serviceAccountName")), "robot");
        assert_eq!(one(field("status.hostIP")), "192.168.1.10");
        assert_eq!(one(field("status.hostIPs")), "192.168.1.10");
        assert_eq!(one(field("status.podIP")), "10.88.0.5");
        assert_eq!(one(field("status.podIPs")), "10.88.0.5,fd00::5");
        assert_eq!(
            error(field("spec.hostname")),
            "unsupported fieldPath: spec.hostname"
        );
    }

    #[test]
    fn config_map_and_secret_key_refs_use_upstream_messages() {
        assert_eq!(one(cm_key("cfg", "LEVEL", None)), "debug");
        assert_eq!(one(secret_key("creds", "PASSWORD", None)), "hunter2");
        assert_eq!(error(cm_key("x", "k", None)), "configmap \"x\" not found");
        assert_eq!(
            error(cm_key("cfg", "k", None)),
            "couldn't find key k in ConfigMap default/cfg"
        );
        assert_eq!(error(secret_key("s", "k", None)), "secret \"s\" not found");
        assert_eq!(
            error(secret_key("creds", "k", None)),
            "couldn't find key k in Secret default/creds"
        );
    }

    #[test]
    fn optional_key_refs_that_miss_define_nothing() {
        for source in [
            cm_key("x", "k", Some(true)),
            cm_key("cfg", "k", Some(true)),
            secret_key("s", "k", Some(true)),
            secret_key("creds", "k", Some(true)),
        ] {
            let container = Container {
                name: "app".into(),
                env: Some(vec![var("X", source)]),
                ..Default::default()
            };
            assert!(resolve(&container).unwrap().vars.is_empty());
        }
    }

    fn with_resources(
        source: EnvVarSource,
        limits: &[(&str, &str)],
        requests: &[(&str, &str)],
    ) -> String {
        let list = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            )
        };
        let container = Container {
            name: "app".into(),
            env: Some(vec![var("X", source)]),
            resources: Some(ResourceRequirements {
                limits: list(limits),
                requests: list(requests),
                claims: None,
            }),
            ..Default::default()
        };
        resolve(&container).unwrap().vars[0].1.clone()
    }

    #[test]
    fn resource_refs_divide_and_round_up_like_upstream() {
        let limits = [
            ("cpu", "250m"),
            ("memory", "100Mi"),
            ("ephemeral-storage", "1G"),
        ];
        let requests = [("cpu", "1500m"), ("memory", "1000001")];
        assert_eq!(
            with_resources(resource("limits.cpu", None), &limits, &requests),
            "1"
        );
        assert_eq!(
            with_resources(resource("limits.cpu", Some("1m")), &limits, &requests),
            "250"
        );
        assert_eq!(
            with_resources(resource("limits.cpu", Some("100m")), &limits, &requests),
            "3"
        );
        assert_eq!(
            with_resources(resource("requests.cpu", None), &limits, &requests),
            "2"
        );
        assert_eq!(
            with_resources(resource("limits.memory", None), &limits, &requests),
            "104857600"
        );
        assert_eq!(
            with_resources(resource("limits.memory", Some("1Mi")), &limits, &requests),
            "100"
        );
        assert_eq!(
            with_resources(resource("limits.memory", Some("1M")), &limits, &requests),
            "105"
        );
        assert_eq!(
            with_resources(resource("requests.memory", Some("1M")), &limits, &requests),
            "2"
        );
        assert_eq!(
            with_resources(
                resource("limits.ephemeral-storage", Some("1Mi")),
                &limits,
                &requests
            ),
            "954"
        );
    }

    #[test]
    fn unset_limits_are_the_node_allocatable_and_unset_requests_follow_limits() {
        assert_eq!(with_resources(resource("limits.cpu", None), &[], &[]), "2");
        assert_eq!(
            with_resources(resource("limits.memory", Some("1Gi")), &[], &[]),
            "8"
        );
        assert_eq!(
            with_resources(resource("requests.cpu", Some("1m")), &[("cpu", "2")], &[]),
            "2000"
        );
        assert_eq!(
            with_resources(resource("requests.memory", None), &[], &[]),
            "0"
        );
    }

    #[test]
    fn unsupported_resources_are_errors() {
        assert_eq!(
            error(resource("limits.gpu", None)),
            "unsupported container resource : limits.gpu"
        );
        assert_eq!(
            error(resource("cpu", None)),
            "unsupported container resource : cpu"
        );
    }
}
