//! Strategic merge patch, the format of `kubectl apply`'s three-way patch.
//!
//! Lists listed in `merge_key` merge element by element by their key (as upstream's
//! `patchMergeKey` tags say); other lists are replaced. Directives: `$patch`
//! (`delete`/`replace`/`merge`) in maps and list elements, `$setElementOrder/<list>`,
//! `$deleteFromPrimitiveList/<list>` and `$retainKeys`. The merge keys are a fixed table for
//! the fields of the kinds coracle serves, not read from OpenAPI.

use serde_json::{Map, Value};

use crate::resources::Resource;
use crate::status_error::ApiError;

/// How a list field merges.
enum ListStrategy {
    /// Merge objects by this key.
    Key(&'static str),
    /// Union of primitive values.
    Primitive,
    /// Replace the whole list.
    Replace,
}

/// The merge strategy of a list by its field name.
fn merge_key(field: &str) -> ListStrategy {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => ListStrategy::Key("name"),
        "volumeMounts" => ListStrategy::Key("mountPath"),
        "volumeDevices" => ListStrategy::Key("devicePath"),
        "ports" => ListStrategy::Key("containerPort"),
        "conditions" => ListStrategy::Key("type"),
        "hostAliases" => ListStrategy::Key("ip"),
        "topologySpreadConstraints" => ListStrategy::Key("topologyKey"),
        "ownerReferences" => ListStrategy::Key("uid"),
        "finalizers" => ListStrategy::Primitive,
        _ => ListStrategy::Replace,
    }
}

/// The `x-kubernetes-patch-strategy` and `-merge-key` OpenAPI tells clients for a list field,
/// matching how [`apply`] merges it; `None` for lists it replaces.
pub fn merge_strategy(field: &str) -> Option<(&'static str, Option<&'static str>)> {
    match merge_key(field) {
        ListStrategy::Key(key) => Some(("merge", Some(key))),
        ListStrategy::Primitive => Some(("merge", None)),
        ListStrategy::Replace => None,
    }
}

/// Applies `patch` to `current`.
pub fn apply(_res: &Resource, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    merge_map(current.as_object().cloned().unwrap_or_default(), patch)
        .map(|m| m.map(Value::Object).unwrap_or(Value::Null))
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// Merges a map; `None` means the map is deleted (`$patch: delete`).
fn merge_map(
    mut current: Map<String, Value>,
    patch: &Value,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let Some(patch) = patch.as_object() else {
        return Err(bad("strategic merge patch: expected a map".into()));
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            return Ok(Some(replaced));
        }
        Some("merge") | None => {}
        Some(other) => return Err(bad(format!("unknown patch type: {other}"))),
    }
    let retain: Option<Vec<String>> =
        patch
            .get("$retainKeys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            });

    // Deletions from primitive lists first, then element order, then the fields.
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = value
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if let Some(Value::Array(items)) = current.get_mut(field) {
                items.retain(|v| !remove.contains(&v));
            }
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            current.remove(key);
            continue;
        }
        let merged = match (current.remove(key), value) {
            (Some(Value::Object(old)), Value::Object(_)) => {
                merge_map(old, value)?.map(Value::Object)
            }
            (None, Value::Object(_)) => merge_map(Map::new(), value)?.map(Value::Object),
            (old, Value::Array(items)) => Some(merge_list(key, old, items)?),
            (_, other) => Some(other.clone()),
        };
        if let Some(merged) = merged {
            current.insert(key.clone(), merged);
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            if let (Some(Value::Array(items)), Some(order)) =
                (current.get_mut(field), value.as_array())
            {
                reorder(field, items, order);
            }
        }
    }
    if let Some(keep) = retain {
        current.retain(|k, _| keep.contains(k));
    }
    Ok(Some(current))
}

fn merge_list(field: &str, old: Option<Value>, patch: &[Value]) -> Result<Value, ApiError> {
    let old = match old {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    match merge_key(field) {
        ListStrategy::Replace => Ok(Value::Array(strip_directives(patch))),
        ListStrategy::Primitive => {
            let mut out = old;
            for v in patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListStrategy::Key(key) => {
            if patch
                .iter()
                .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
            {
                let rest: Vec<Value> = patch
                    .iter()
                    .filter(|e| e.get("$patch").is_none())
                    .cloned()
                    .collect();
                return Ok(Value::Array(rest));
            }
            let mut out = old;
            for element in patch {
                let id = element.get(key);
                let pos = id.and_then(|id| out.iter().position(|o| o.get(key) == Some(id)));
                let delete = element.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        let old = out[i].as_object().cloned().unwrap_or_default();
                        match merge_map(old, element)? {
                            Some(m) => out[i] = Value::Object(m),
                            None => {
                                out.remove(i);
                            }
                        }
                    }
                    (None, false) => {
                        if let Some(m) = merge_map(Map::new(), element)? {
                            out.push(Value::Object(m));
                        }
                    }
                }
            }
            Ok(Value::Array(out))
        }
    }
}

fn strip_directives(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .map(|v| match v {
            Value::Object(m) => {
                let mut m = m.clone();
                m.retain(|k, _| !k.starts_with('$'));
                Value::Object(m)
            }
            other => other.clone(),
        })
        .collect()
}

/// Orders `items` as `order` lists them; elements it does not name keep their place after.
fn reorder(field: &str, items: &mut [Value], order: &[Value]) {
    let position = |item: &Value| -> usize {
        let found = match merge_key(field) {
            ListStrategy::Key(key) => order.iter().position(|o| o.get(key) == item.get(key)),
            _ => order.iter().position(|o| o == item),
        };
        found.unwrap_or(usize::MAX)
    };
    items.sort_by_key(position);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> &'static Resource {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    #[test]
    fn containers_merge_by_name_with_delete_and_order_directives() {
        let current = json!({"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27"},
            {"name": "side", "image": "busybox"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"$patch": "delete", "name": "side"}, {"name": "nginx", "image": "nginx:1.28"}]}});
        let out = apply(pods(), &current, &patch).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}})
        );
    }

    #[test]
    fn labels_set_to_null_are_removed_and_retain_keys_prunes() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}},
                             "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {}}}});
        let patch = json!({"metadata": {"labels": {"a": null}},
                           "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = apply(pods(), &current, &patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"strategy": {"type": "Recreate"}}})
        );
    }

    #[test]
    fn primitive_lists_delete_and_ports_merge_by_container_port() {
        let current = json!({"metadata": {"finalizers": ["a", "b"]},
                             "ports": [{"containerPort": 80, "name": "http"}]});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                           "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]});
        let out = apply(pods(), &current, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            out["ports"],
            json!([{"containerPort": 80, "name": "web"}, {"containerPort": 443}])
        );
    }
}
