//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as client-go's typed
//! clients send them: `kubectl create configmap|secret|namespace|serviceaccount` has no JSON
//! fallback (reference kubectl-wire.md §16).
//!
//! The body is the magic `k8s\0` and a `runtime.Unknown` whose `raw` bytes are the object.
//! The messages come from `k8s-pb`; each kind served here is turned into the JSON form the rest
//! of the server works on, with gogo-protobuf's explicit empty values taken as unset.
//!
//! # Caveats
//!
//! Only the kinds above are decoded, since they are the ones kubectl's generators create among
//! the resources coracle serves; any other kind is answered 415 with a message saying to send
//! JSON. Responses are always JSON, which client-go accepts.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{json, Map, Value};

use crate::status_error::ApiError;

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// Decodes a protobuf body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |reason: String| {
        ApiError::BadRequest(format!("the protobuf body could not be decoded: {reason}"))
    };
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with the k8s\\0 magic".into()))?;
    let unknown = Unknown::decode(envelope).map_err(|e| bad(e.to_string()))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();

    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(&*raw)),
        ("v1", "Secret") => secret(core::Secret::decode(&*raw)),
        ("v1", "Namespace") => namespace(core::Namespace::decode(&*raw)),
        ("v1", "ServiceAccount") => service_account(core::ServiceAccount::decode(&*raw)),
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json, application/yaml (protobuf only for v1 ConfigMap, Secret, Namespace and ServiceAccount)",
            })
        }
    }
    .map_err(|e| bad(e.to_string()))?;
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(object))
}

type Decoded = Result<Map<String, Value>, prost::DecodeError>;

fn config_map(cm: Result<core::ConfigMap, prost::DecodeError>) -> Decoded {
    let cm = cm?;
    let mut out = with_metadata(cm.metadata);
    put(&mut out, "data", strings(&cm.data));
    put(&mut out, "binaryData", bytes(&cm.binary_data));
    put(&mut out, "immutable", cm.immutable.map(Value::Bool));
    Ok(out)
}

fn secret(secret: Result<core::Secret, prost::DecodeError>) -> Decoded {
    let secret = secret?;
    let mut out = with_metadata(secret.metadata);
    put(&mut out, "data", bytes(&secret.data));
    put(&mut out, "stringData", strings(&secret.string_data));
    put(&mut out, "type", text(secret.r#type));
    put(&mut out, "immutable", secret.immutable.map(Value::Bool));
    Ok(out)
}

fn namespace(ns: Result<core::Namespace, prost::DecodeError>) -> Decoded {
    let ns = ns?;
    let mut out = with_metadata(ns.metadata);
    let finalizers = ns.spec.map(|s| s.finalizers).unwrap_or_default();
    if !finalizers.is_empty() {
        out.insert("spec".into(), json!({ "finalizers": finalizers }));
    }
    Ok(out)
}

fn service_account(sa: Result<core::ServiceAccount, prost::DecodeError>) -> Decoded {
    let sa = sa?;
    let mut out = with_metadata(sa.metadata);
    let secrets: Vec<Value> = sa.secrets.into_iter().map(object_reference).collect();
    if !secrets.is_empty() {
        out.insert("secrets".into(), Value::Array(secrets));
    }
    let pull: Vec<Value> = sa
        .image_pull_secrets
        .into_iter()
        .map(|r| json!({ "name": r.name.unwrap_or_default() }))
        .collect();
    if !pull.is_empty() {
        out.insert("imagePullSecrets".into(), Value::Array(pull));
    }
    put(
        &mut out,
        "automountServiceAccountToken",
        sa.automount_service_account_token.map(Value::Bool),
    );
    Ok(out)
}

fn object_reference(r: core::ObjectReference) -> Value {
    let mut out = Map::new();
    put(&mut out, "kind", text(r.kind));
    put(&mut out, "namespace", text(r.namespace));
    put(&mut out, "name", text(r.name));
    put(&mut out, "uid", text(r.uid));
    put(&mut out, "apiVersion", text(r.api_version));
    put(&mut out, "resourceVersion", text(r.resource_version));
    put(&mut out, "fieldPath", text(r.field_path));
    Value::Object(out)
}

/// A map holding the object's `metadata`; what the server sets itself (uid, resourceVersion,
/// timestamps, managedFields) is left out, as it would be ignored on create anyway.
fn with_metadata(metadata: Option<meta::ObjectMeta>) -> Map<String, Value> {
    let m = metadata.unwrap_or_default();
    let mut out = Map::new();
    put(&mut out, "name", text(m.name));
    put(&mut out, "generateName", text(m.generate_name));
    put(&mut out, "namespace", text(m.namespace));
    put(&mut out, "resourceVersion", text(m.resource_version));
    put(&mut out, "labels", strings(&m.labels));
    put(&mut out, "annotations", strings(&m.annotations));
    if !m.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(m.finalizers));
    }
    let owners: Vec<Value> = m
        .owner_references
        .into_iter()
        .map(|o| {
            let mut r = Map::new();
            put(&mut r, "apiVersion", text(o.api_version));
            put(&mut r, "kind", text(o.kind));
            put(&mut r, "name", text(o.name));
            put(&mut r, "uid", text(o.uid));
            put(&mut r, "controller", o.controller.map(Value::Bool));
            put(
                &mut r,
                "blockOwnerDeletion",
                o.block_owner_deletion.map(Value::Bool),
            );
            Value::Object(r)
        })
        .collect();
    if !owners.is_empty() {
        out.insert("ownerReferences".into(), Value::Array(owners));
    }
    let mut object = Map::new();
    object.insert("metadata".into(), Value::Object(out));
    object
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.into(), value);
    }
}

/// A string field; gogo-protobuf writes unset strings as `""`.
fn text(value: Option<String>) -> Option<Value> {
    value.filter(|s| !s.is_empty()).map(Value::String)
}

fn strings(map: &BTreeMap<String, String>) -> Option<Value> {
    (!map.is_empty()).then(|| json!(map))
}

fn bytes(map: &BTreeMap<String, Vec<u8>>) -> Option<Value> {
    let b64 = base64::engine::general_purpose::STANDARD;
    (!map.is_empty()).then(|| {
        Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), Value::String(b64.encode(v))))
                .collect(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    fn object_meta(name: &str) -> meta::ObjectMeta {
        meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(String::new()),
            generation: Some(0),
            ..Default::default()
        }
    }

    #[test]
    fn a_config_map_from_kubectl_create_decodes_to_its_json_form() {
        let cm = core::ConfigMap {
            metadata: Some(object_meta("settings")),
            data: BTreeMap::from([("mode".into(), "fast".into())]),
            binary_data: BTreeMap::from([("blob".into(), vec![0, 1, 2])]),
            immutable: None,
        };
        let object = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                   "data": {"mode": "fast"}, "binaryData": {"blob": "AAEC"}})
        );
    }

    #[test]
    fn a_secret_keeps_its_type_and_base64_data() {
        let secret = core::Secret {
            metadata: Some(object_meta("creds")),
            data: BTreeMap::from([("password".into(), b"hunter2".to_vec())]),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(object["type"], "Opaque");
        assert_eq!(object["data"]["password"], "aHVudGVyMg==");
        assert_eq!(object["metadata"], json!({"name": "creds"}));
    }

    #[test]
    fn namespaces_and_service_accounts_decode() {
        let ns = core::Namespace {
            metadata: Some(object_meta("team-a")),
            spec: Some(core::NamespaceSpec::default()),
            status: None,
        };
        let object = decode(&envelope("v1", "Namespace", ns.encode_to_vec())).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        );
        let sa = core::ServiceAccount {
            metadata: Some(object_meta("robot")),
            automount_service_account_token: Some(false),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "ServiceAccount", sa.encode_to_vec())).unwrap();
        assert_eq!(object["automountServiceAccountToken"], false);
    }

    #[test]
    fn other_kinds_and_broken_bodies_are_refused_clearly() {
        let err = decode(&envelope("apps/v1", "Deployment", Vec::new())).unwrap_err();
        assert!(
            matches!(err, ApiError::UnsupportedMediaType { .. }),
            "{err:?}"
        );
        let err = decode(b"{\"kind\":\"ConfigMap\"}").unwrap_err();
        assert!(err.to_string().contains("k8s\\0 magic"), "{err}");
        let err = decode(&[MAGIC, &[0xff, 0xff, 0xff]].concat()).unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
    }
}
