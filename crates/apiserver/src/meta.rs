//! Object metadata the server owns: uid, creationTimestamp, generation (managedFields are
//! [`crate::fieldmanager`]'s).

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
