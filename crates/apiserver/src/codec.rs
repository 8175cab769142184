//! Request bodies: media types, size and depth limits, and the typed round trip that drops
//! (and reports) fields the Kubernetes types do not have.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret, ServiceAccount};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::query::FieldValidation;
use crate::resources::Resource;
use crate::status_error::ApiError;

/// Upstream's request body limit (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// The deepest JSON nesting accepted (upstream's decoder allows 10000; far fewer suffice).
pub const MAX_DEPTH: usize = 100;

/// Media types accepted for create and update.
const JSON_TYPES: &str = "application/json, application/yaml";

/// Parses a create/update body (`application/json`, `application/yaml`, or protobuf for the
/// kinds [`crate::protobuf`] decodes).
pub fn decode_object(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let media = media_type(content_type);
    match media.as_str() {
        "application/json" | "" => parse_json(body),
        "application/yaml" => parse_yaml(body),
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode(body),
        _ => Err(ApiError::UnsupportedMediaType {
            accepted: JSON_TYPES,
        }),
    }
}

/// The media type without parameters, lower-cased.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Parses JSON with the depth limit, as a Status error on failure.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid UTF-8: {e}")))?;
    check_depth(text)?;
    serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("the request body could not be decoded: {e}")))
}

/// Parses YAML (JSON is YAML), with the same limits.
pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid UTF-8: {e}")))?;
    check_depth(text)?;
    serde_norway::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("the request body could not be decoded: {e}")))
}

/// Rejects documents nested deeper than [`MAX_DEPTH`] before any recursive parser sees them.
fn check_depth(text: &str) -> Result<(), ApiError> {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_DEPTH {
        return Err(ApiError::BadRequest(format!(
            "the request body is nested too deeply (more than {MAX_DEPTH} levels)"
        )));
    }
    Ok(())
}

/// Round-trips `object` through the Kubernetes type of `res`: fields the type lacks are
/// dropped and reported per `validation` (400 for Strict, warnings for Warn).
pub fn normalize(
    res: &Resource,
    object: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let typed = match (res.group, res.kind) {
        ("", "Pod") => roundtrip::<Pod>(&object),
        ("", "Namespace") => roundtrip::<Namespace>(&object),
        ("", "Node") => roundtrip::<Node>(&object),
        ("", "ConfigMap") => roundtrip::<ConfigMap>(&object),
        ("", "Secret") => roundtrip::<Secret>(&object),
        ("", "ServiceAccount") => roundtrip::<ServiceAccount>(&object),
        ("", "Event") => roundtrip::<Event>(&object),
        ("events.k8s.io", "Event") => roundtrip::<k8s_openapi::api::events::v1::Event>(&object),
        ("coordination.k8s.io", "Lease") => roundtrip::<Lease>(&object),
        _ => Ok(object.clone()),
    }?;
    let unknown = coracle_api::manifest::unknown_fields(&object, &typed);
    if !unknown.is_empty() {
        match validation {
            FieldValidation::Strict => {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field {f:?}")));
            }
            FieldValidation::Ignore => {}
        }
    }
    Ok(typed)
}

fn roundtrip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<Value, ApiError> {
    let typed: T = serde_json::from_value(object.clone())
        .map_err(|e| ApiError::BadRequest(format!("the request body is invalid: {e}")))?;
    serde_json::to_value(typed).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The typed form of a stored object.
pub fn typed<T: DeserializeOwned>(object: &Value) -> Result<T, ApiError> {
    serde_json::from_value(object.clone())
        .map_err(|e| ApiError::Internal(format!("stored object does not decode: {e}")))
}

/// A typed object as JSON.
pub fn untyped<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_documents_are_refused() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            parse_json(deep.as_bytes()),
            Err(ApiError::BadRequest(_))
        ));
        assert!(parse_json(b"{\"a\":\"[[[[\"}").is_ok());
    }

    #[test]
    fn invalid_utf8_is_a_bad_request() {
        assert!(matches!(
            parse_json(b"{\"a\":\"\xff\"}"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
