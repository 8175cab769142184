//! `/openapi/v3`: for each group-version a document with one PATCH operation per kind that
//! carries `x-kubernetes-group-version-kind` and the `fieldValidation` parameter, which is
//! what `kubectl apply`'s default validation looks for before leaving unknown fields to the
//! server (reference kubectl-wire.md §7), and `components.schemas` generated from the
//! `k8s-openapi` types (their `schemars` schemas, with upstream's descriptions), which
//! `kubectl explain` reads and client-side apply computes its patches from.
//!
//! [`v2`] renders the same operations and schemas as one Swagger 2.0 document for
//! `/openapi/v2`, in JSON and as gnostic's protobuf message, as upstream builds both versions
//! from one source.
//!
//! The documents are built once per process and cached; the index's `?hash=` is their digest.
//!
//! # Caveats
//!
//! The only operations are the PATCH ones: upstream's documents also describe get, list,
//! watch, create, update and delete. The generated schemas carry the strategic-merge
//! extensions (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`) of the list
//! fields the server's own strategic merge patch merges by key ([`crate::patch::strategic`]),
//! not upstream's per-type tags; they lack the server-side-apply list markers
//! (`x-kubernetes-list-type`).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::resources::{self, RESOURCES};

pub mod v2;

fn gv_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_owned()
    } else {
        format!("apis/{group}/v1")
    }
}

/// The document of one group-version (`api/v1`, `apis/events.k8s.io/v1`), built once.
pub fn document(path: &str) -> Option<Value> {
    static DOCUMENTS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    let documents = DOCUMENTS.get_or_init(|| {
        groups()
            .filter_map(|g| build_document(&gv_path(g)).map(|d| (gv_path(g), d)))
            .collect()
    });
    documents.get(path).cloned()
}

/// The query parameters of every PATCH operation, all strings.
pub(crate) const PATCH_QUERY_PARAMETERS: [&str; 3] = ["fieldValidation", "fieldManager", "dryRun"];

/// The patch content types the server accepts.
pub(crate) const PATCH_CONTENT_TYPES: [&str; 4] = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// The groups served, the core group (`""`) first.
pub(crate) fn groups() -> impl Iterator<Item = &'static str> {
    std::iter::once("").chain(resources::GROUPS.iter().copied())
}

/// The PATCH operations of a group's kinds: `(url, x-kubernetes-group-version-kind)`. Both
/// OpenAPI versions render these, so v2 and v3 describe the same operations.
pub(crate) fn patch_operations(group: &str) -> Vec<(String, Value)> {
    RESOURCES
        .iter()
        .filter(|r| r.group == group)
        .map(|r| {
            let url = if r.namespaced {
                format!(
                    "/{}/namespaces/{{namespace}}/{}/{{name}}",
                    gv_path(group),
                    r.plural
                )
            } else {
                format!("/{}/{}/{{name}}", gv_path(group), r.plural)
            };
            let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
            (url, gvk)
        })
        .collect()
}

fn build_document(path: &str) -> Option<Value> {
    let group = groups().find(|g| gv_path(g) == path)?;
    let parameters: Vec<Value> = PATCH_QUERY_PARAMETERS
        .iter()
        .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    let content: Map<String, Value> = PATCH_CONTENT_TYPES
        .iter()
        .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
        .collect();
    let mut paths = Map::new();
    for (url, gvk) in patch_operations(group) {
        paths.insert(
            url,
            json!({"patch": {
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": "patch",
                "parameters": parameters,
                "requestBody": {"content": content, "required": true},
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas(group)},
    }))
}

/// The schemas of a group's kinds and everything they refer to, by upstream's names
/// (`io.k8s.api.core.v1.Pod`), with `$ref`s to `#/components/schemas/`.
pub(crate) fn schemas(group: &str) -> Value {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::events::v1 as events;
    use schemars::JsonSchema;

    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut kinds: Vec<(String, &resources::Resource)> = Vec::new();
    let mut add = |name: std::borrow::Cow<'static, str>, kind: &str| {
        if let Some(r) = RESOURCES
            .iter()
            .find(|r| r.group == group && r.kind == kind)
        {
            kinds.push((name.into_owned(), r));
        }
    };
    match group {
        "" => {
            generator.subschema_for::<core::Pod>();
            add(core::Pod::schema_name(), "Pod");
            generator.subschema_for::<core::ConfigMap>();
            add(core::ConfigMap::schema_name(), "ConfigMap");
            generator.subschema_for::<core::Secret>();
            add(core::Secret::schema_name(), "Secret");
            generator.subschema_for::<core::Namespace>();
            add(core::Namespace::schema_name(), "Namespace");
            generator.subschema_for::<core::Node>();
            add(core::Node::schema_name(), "Node");
            generator.subschema_for::<core::ServiceAccount>();
            add(core::ServiceAccount::schema_name(), "ServiceAccount");
            generator.subschema_for::<core::Event>();
            add(core::Event::schema_name(), "Event");
        }
        "events.k8s.io" => {
            generator.subschema_for::<events::Event>();
            add(events::Event::schema_name(), "Event");
        }
        "coordination.k8s.io" => {
            generator.subschema_for::<Lease>();
            add(Lease::schema_name(), "Lease");
        }
        _ => {}
    }
    let mut schemas = Value::Object(generator.take_definitions(true).into_iter().collect());
    for (name, r) in kinds {
        if let Some(schema) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
    }
    add_patch_extensions(&mut schemas);
    schemas
}

/// Marks list properties with the strategy the server's strategic merge patch uses for them.
fn add_patch_extensions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                for (field, schema) in props.iter_mut() {
                    let Some(schema) = schema.as_object_mut() else {
                        continue;
                    };
                    if schema.get("type").and_then(Value::as_str) != Some("array") {
                        continue;
                    }
                    match crate::patch::strategic::merge_strategy(field) {
                        Some((strategy, Some(key))) => {
                            schema.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
                            schema.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                        }
                        Some((strategy, None)) => {
                            schema.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
                        }
                        None => {}
                    }
                }
            }
            map.values_mut().for_each(add_patch_extensions);
        }
        Value::Array(items) => items.iter_mut().for_each(add_patch_extensions),
        _ => {}
    }
}

/// The `/openapi/v3` index.
pub fn index() -> Value {
    let mut paths = Map::new();
    for group in groups() {
        let path = gv_path(group);
        let doc = document(&path).unwrap_or(Value::Null);
        let hash = hex::encode(&Sha256::digest(doc.to_string().as_bytes())[..16]).to_uppercase();
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}
