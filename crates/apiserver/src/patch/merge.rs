//! JSON merge patch (RFC 7386): objects merge, `null` deletes, everything else replaces.

use serde_json::Value;

/// `patch` merged into `target`.
pub fn apply(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_map) = patch else {
        return patch.clone();
    };
    let mut result = match target {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    for (key, value) in patch_map {
        if value.is_null() {
            result.remove(key);
        } else {
            let merged = apply(result.get(key).unwrap_or(&Value::Null), value);
            result.insert(key.clone(), merged);
        }
    }
    Value::Object(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_deletes_and_objects_merge() {
        let t = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        let p = json!({"a": {"b": null, "e": 3}, "d": [2]});
        assert_eq!(apply(&t, &p), json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }
}
