//! Object metadata the server owns: uid, creationTimestamp, generation, managedFields.

use serde_json::{json, Map, Value};

/// Now, as the API's second-precision RFC 3339 `Time`.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Now with microseconds, as `MicroTime` (`eventTime`, lease `renewTime`).
pub fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// `metadata` of `object`, created if missing.
pub fn metadata(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// Fills what a create sets: uid, creationTimestamp, generation 1; clears what clients may not set.
pub fn stamp_create(object: &mut Value) {
    let meta = metadata(object);
    meta.insert("uid".into(), json!(coracle_kubelet::engine::new_uid()));
    meta.insert("creationTimestamp".into(), json!(now()));
    meta.insert("generation".into(), json!(1));
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(field);
    }
}

/// Carries over what an update may not change, and bumps `generation` when the object's
/// desired state (everything but metadata and status) changed.
pub fn carry_over(new: &mut Value, old: &Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let changed = spec_of(new) != spec_of(old);
    let meta = metadata(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    let generation = old_meta
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    meta.insert(
        "generation".into(),
        json!(if changed { generation + 1 } else { generation }),
    );
}

fn spec_of(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    o
}

/// Records `manager`'s `operation` in `metadata.managedFields` with the fields it set.
pub fn record_manager(
    object: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
) {
    let mut fields = field_set(object);
    if let Some(m) = fields.as_object_mut() {
        if let Some(meta) = m.get_mut("f:metadata").and_then(Value::as_object_mut) {
            for f in [
                "f:uid",
                "f:resourceVersion",
                "f:creationTimestamp",
                "f:generation",
                "f:managedFields",
                "f:name",
                "f:namespace",
                "f:deletionTimestamp",
                "f:deletionGracePeriodSeconds",
            ] {
                meta.remove(f);
            }
            if meta.is_empty() {
                m.remove("f:metadata");
            }
        }
        if subresource == Some("status") {
            m.retain(|k, _| k == "f:status");
        } else {
            m.remove("f:status");
        }
        m.remove("f:apiVersion");
        m.remove("f:kind");
    }
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if let Some(sub) = subresource {
        entry["subresource"] = json!(sub);
    }
    let meta = metadata(object);
    let mut list = meta
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.retain(|e| {
        !(e["manager"] == manager
            && e["operation"] == operation
            && e.get("subresource").and_then(Value::as_str) == subresource)
    });
    list.push(entry);
    meta.insert("managedFields".into(), Value::Array(list));
}

/// The FieldsV1 set of every leaf in `value`.
fn field_set(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(format!("f:{k}"), field_set(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Map::new();
            for item in items {
                let key = ["name", "containerPort", "mountPath", "type", "key"]
                    .iter()
                    .find_map(|k| item.get(*k).map(|v| (k, v)));
                match key {
                    Some((k, v)) => {
                        let mut sub = field_set(item);
                        if let Some(m) = sub.as_object_mut() {
                            m.insert(".".into(), json!({}));
                        }
                        out.insert(format!("k:{}", json!({*k: v})), sub);
                    }
                    None => {
                        if !item.is_object() {
                            out.insert(format!("v:{item}"), json!({}));
                        }
                    }
                }
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}
