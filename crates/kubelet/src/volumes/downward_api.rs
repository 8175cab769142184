//! The downward API: pod fields and container resources exposed to the pod, both as env
//! (`fieldRef`, `resourceFieldRef`, used by [`crate::env`]) and as `downwardAPI` volume files.
//!
//! Follows upstream's `pkg/fieldpath` (`ExtractFieldPathAsString`, `formatMap`),
//! `pkg/api/v1/resource` (`ExtractContainerResourceValue`, limits defaulted to the node's
//! allocatable as in `MergeContainerResourceLimits`) and `pkg/volume/downwardapi`
//! (`CollectData`, lines of map-valued files sorted). The volume lives on a tmpfs as upstream's.
//!
//! # Differences from upstream
//! - An unset `limits.ephemeral-storage` is 0, not the node's allocatable storage.
//! - An unset request whose limit is set takes the limit's value, which is what API defaulting
//!   would have stored; upstream's kubelet relies on that defaulting having happened.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, Pod, ResourceFieldSelector};

use super::atomic_writer::{FileProjection, Payload};
use super::quantity::Quantity;
use crate::env::{ConfigError, NodeInfo};

/// The `metadata.*` field paths shared by env and volumes: name, namespace, uid, and labels or
/// annotations, whole (`key="value"` lines, sorted) or one key (`metadata.labels['app']`).
pub(crate) fn metadata_field_value(pod: &Pod, field_path: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let unsupported = || ConfigError::UnsupportedFieldPath {
        field_path: field_path.to_owned(),
    };
    match field_path {
        "metadata.name" => return Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => return Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => return Ok(meta.uid.clone().unwrap_or_default()),
        "metadata.labels" => return Ok(format_map(meta.labels.as_ref())),
        "metadata.annotations" => return Ok(format_map(meta.annotations.as_ref())),
        _ => {}
    }

    // A subscripted path: `metadata.labels['key']`.
    let (map_path, key) = field_path
        .strip_suffix("']")
        .and_then(|path| path.split_once("['"))
        .ok_or_else(unsupported)?;
    let map = match map_path {
        "metadata.labels" => meta.labels.as_ref(),
        "metadata.annotations" => meta.annotations.as_ref(),
        _ => return Err(unsupported()),
    };
    Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
}

/// `key="value"` lines in key order, values quoted like Go's `%q`, no trailing newline.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let lines: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", go_quote(value)))
        .collect();
    lines.join("\n")
}

/// Go's `strconv.Quote` for the characters that occur in labels and annotations.
fn go_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                quoted.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A `resourceFieldRef` value: the container named by `containerName` (else `container`),
/// its limit or request divided by `divisor` and rounded up, as upstream does.
pub(crate) fn resource_field_value(
    pod: &Pod,
    container: Option<&Container>,
    selector: &ResourceFieldSelector,
    node: &NodeInfo,
) -> Result<String, ConfigError> {
    let container = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => find_container(pod, name)?,
        None => container.ok_or_else(|| ConfigError::ContainerNotFound {
            container: String::new(),
        })?,
    };
    let divisor = match &selector.divisor {
        Some(divisor) => Quantity::parse(&divisor.0)?,
        None => Quantity::from_units(1),
    };
    let divisor = if divisor.milli_value() == 0 {
        Quantity::from_units(1)
    } else {
        divisor
    };

    let unsupported = || ConfigError::UnsupportedResource {
        resource: selector.resource.clone(),
    };
    let (kind, name) = selector.resource.split_once('.').ok_or_else(unsupported)?;
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !name.starts_with("hugepages-") {
        return Err(unsupported());
    }
    let quantity = match kind {
        "limits" => container_limit(container, name, node)?,
        "requests" => match quantity_of(container, "requests", name)? {
            Some(request) => request,
            None => quantity_of(container, "limits", name)?.unwrap_or(Quantity::from_units(0)),
        },
        _ => return Err(unsupported()),
    };

    // cpu compares thousandths, everything else whole units; both round up.
    let (value, per) = if name == "cpu" {
        (quantity.milli_value(), divisor.milli_value())
    } else {
        (quantity.value(), divisor.value().max(1))
    };
    Ok(ceil_div(value, per).to_string())
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container, ConfigError> {
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
    let init = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten();
    containers
        .chain(init)
        .find(|c| c.name == name)
        .ok_or_else(|| ConfigError::ContainerNotFound {
            container: name.to_owned(),
        })
}

/// The container's limit, or the node's allocatable amount when it has none.
fn container_limit(
    container: &Container,
    name: &str,
    node: &NodeInfo,
) -> Result<Quantity, ConfigError> {
    if let Some(limit) = quantity_of(container, "limits", name)? {
        return Ok(limit);
    }
    Ok(match name {
        "cpu" => Quantity::from_units(i128::from(node.cpus)),
        "memory" => Quantity::from_units(i128::from(node.memory_bytes)),
        _ => Quantity::from_units(0),
    })
}

fn quantity_of(
    container: &Container,
    kind: &str,
    name: &str,
) -> Result<Option<Quantity>, ConfigError> {
    let resources = container.resources.as_ref();
    let list = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        _ => resources.and_then(|r| r.requests.as_ref()),
    };
    match list.and_then(|l| l.get(name)) {
        Some(quantity) => Ok(Some(Quantity::parse(&quantity.0)?)),
        None => Ok(None),
    }
}

fn ceil_div(value: i128, per: i128) -> i128 {
    let quotient = value / per;
    if value % per != 0 && (value > 0) == (per > 0) {
        quotient + 1
    } else {
        quotient
    }
}

/// The files of a downwardAPI volume (or projection): one per item, mode from the item or
/// `default_mode`; map-valued fields have their lines sorted.
pub(crate) fn collect_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    node: &NodeInfo,
) -> Result<Payload, ConfigError> {
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            sort_lines(&metadata_field_value(pod, &field.field_path)?)
        } else if let Some(selector) = &item.resource_field_ref {
            resource_field_value(pod, None, selector, node)?
        } else {
            String::new()
        };
        let mode = item.mode.map_or(default_mode, |m| m as u32);
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode,
            },
        );
    }
    Ok(payload)
}

fn sort_lines(value: &str) -> String {
    let mut lines: Vec<&str> = value.split('\n').collect();
    lines.sort_unstable();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ObjectFieldSelector, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod() -> Pod {
        let labels = [
            ("tier", "front"),
            ("app", "web"),
            ("quote", "say \"hi\"\n\tbye\\"),
        ];
        let container = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                limits: Some([("memory".to_owned(), K8sQuantity("64Mi".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                annotations: Some([("b".to_owned(), "ünï".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container],
                ..Default::default()
            }),
            status: None,
        }
    }

    fn field_item(path: &str, field_path: &str, mode: Option<i32>) -> DownwardAPIVolumeFile {
        DownwardAPIVolumeFile {
            path: path.into(),
            mode,
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                api_version: None,
            }),
            resource_field_ref: None,
        }
    }

    #[test]
    fn labels_render_as_sorted_go_quoted_lines_without_trailing_newline() {
        let labels = metadata_field_value(&pod(), "metadata.labels").unwrap();
        assert_eq!(
            labels,
            "app=\"web\"\nquote=\"say \\\"hi\\\"\\n\\tbye\\\\\"\ntier=\"front\""
        );
        let annotations = metadata_field_value(&pod(), "metadata.annotations").unwrap();
        assert_eq!(annotations, "b=\"ünï\"");
    }

    #[test]
    fn go_quote_escapes_control_characters() {
        assert_eq!(go_quote("a\u{1}b\u{7f}"), "\"a\\x01b\\x7f\"");
        assert_eq!(go_quote("\u{85}"), "\"\\u0085\"");
    }

    #[test]
    fn volume_files_take_item_mode_or_default_mode() {
        let items = [
            field_item("labels", "metadata.labels", None),
            field_item("meta/name", "metadata.name", Some(0o600)),
        ];
        let files = collect_files(&pod(), &items, 0o644, &NodeInfo::default()).unwrap();
        assert_eq!(files["labels"].mode, 0o644);
        assert_eq!(files["meta/name"].mode, 0o600);
        assert_eq!(files["meta/name"].data, b"web");
    }

    #[test]
    fn volume_resource_items_name_their_container() {
        let selector = |container: &str| ResourceFieldSelector {
            container_name: Some(container.into()),
            divisor: Some(K8sQuantity("1Mi".into())),
            resource: "limits.memory".into(),
        };
        let item = |container: &str| DownwardAPIVolumeFile {
            path: "mem".into(),
            resource_field_ref: Some(selector(container)),
            ..Default::default()
        };
        let files = collect_files(&pod(), &[item("app")], 0o644, &NodeInfo::default()).unwrap();
        assert_eq!(files["mem"].data, b"64");
        let err = collect_files(&pod(), &[item("nope")], 0o644, &NodeInfo::default()).unwrap_err();
        assert_eq!(err.to_string(), "container nope not found");
    }

    #[test]
    fn spec_fields_are_not_offered_to_volumes() {
        let err = metadata_field_value(&pod(), "spec.nodeName").unwrap_err();
        assert_eq!(err.to_string(), "unsupported fieldPath: spec.nodeName");
        let err = metadata_field_value(&pod(), "metadata.owner['x']").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported fieldPath: metadata.owner['x']"
        );
    }
}
