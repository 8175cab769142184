//! `/openapi/v3`: for each group-version a document with one PATCH operation per kind that
//! carries `x-kubernetes-group-version-kind` and the `fieldValidation` parameter, which is
//! what `kubectl apply`'s default validation looks for before leaving unknown fields to the
//! server (reference kubectl-wire.md §7).
//!
//! The documents have no `components.schemas`, so `kubectl explain` does not work yet and
//! client-side apply prints kubectl's "OpenAPI V3 Components is nil" warning on updates.
//! `/openapi/v2` answers 404 (kubectl only accepts it as protobuf).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::resources::{self, RESOURCES};

fn gv_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_owned()
    } else {
        format!("apis/{group}/v1")
    }
}

/// The document of one group-version (`api/v1`, `apis/events.k8s.io/v1`).
pub fn document(path: &str) -> Option<Value> {
    let group = std::iter::once("")
        .chain(resources::GROUPS.iter().copied())
        .find(|g| gv_path(g) == path)?;
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        let url = if r.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}/{{name}}",
                gv_path(group),
                r.plural
            )
        } else {
            format!("/{}/{}/{{name}}", gv_path(group), r.plural)
        };
        paths.insert(url, json!({"patch": {
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
            "x-kubernetes-action": "patch",
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            ],
            "requestBody": {"content": {
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
            }, "required": true},
            "responses": {"200": {"description": "OK"}},
        }}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::GIT_VERSION},
        "paths": paths,
    }))
}

/// The `/openapi/v3` index.
pub fn index() -> Value {
    let mut paths = Map::new();
    for group in std::iter::once("").chain(resources::GROUPS.iter().copied()) {
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
