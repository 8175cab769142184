//! `/openapi/v2`: one Swagger 2.0 document for every group, built from the same operations and
//! generated schemas as the v3 documents, served as JSON or as the gnostic `openapi_v2.Document`
//! protobuf message (the only form kubectl, client-go's `OpenAPISchema()` and helm ask for),
//! each with its own `ETag`, and 304 on a matching `If-None-Match`, as kube-openapi does.
//!
//! Both bodies are built once per process.
//!
//! # Caveats
//!
//! The document has no `securityDefinitions` (upstream names the bearer token there), and an
//! `Accept` header that allows neither form gets a 406 `Status` where kube-openapi answers 406
//! with an empty body.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use super::{groups, patch_operations, schemas, PATCH_CONTENT_TYPES, PATCH_QUERY_PARAMETERS};
use crate::status_error::ApiError;

pub mod gnostic;

/// The media type clients ask for the protobuf form with.
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The protobuf form's `Content-Type`, also accepted in `Accept`. kube-openapi answers with
/// this spelling whichever one was asked for: an `@` in a media type is a syntax error to Go's
/// `mime.ParseMediaType`, which client-go applies to every response's `Content-Type`.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Where v3 schemas point their `$ref`s, and where Swagger 2.0 definitions live.
const V3_REFS: &str = "#/components/schemas/";
const V2_REFS: &str = "#/definitions/";

/// The Swagger 2.0 document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build_document)
}

fn build_document() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for group in groups() {
        for (url, gvk) in patch_operations(group) {
            paths.insert(url, json!({"patch": patch_operation(gvk)}));
        }
        if let Value::Object(schemas) = schemas(group) {
            for (name, schema) in schemas {
                definitions.insert(name, swagger_schema(schema));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::GIT_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

/// The v3 PATCH operation in Swagger 2.0 form: the request body is a `body` parameter and its
/// content types are `consumes`.
fn patch_operation(gvk: Value) -> Value {
    let mut parameters = vec![json!({
        "name": "body", "in": "body", "required": true, "schema": {"type": "object"},
    })];
    parameters.extend(
        PATCH_QUERY_PARAMETERS.iter().map(
            |name| json!({"name": name, "in": "query", "type": "string", "uniqueItems": true}),
        ),
    );
    json!({
        "x-kubernetes-group-version-kind": gvk,
        "x-kubernetes-action": "patch",
        "consumes": PATCH_CONTENT_TYPES,
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
    })
}

/// A v3 schema in Swagger 2.0 form: `$ref`s point into `#/definitions/`, and a reference with
/// a description (which OpenAPI 3.0 wraps in a one-element `allOf`) becomes a `$ref` with
/// siblings, as upstream writes it in v2 and as kubectl's v2 parser reads it.
fn swagger_schema(schema: Value) -> Value {
    match schema {
        Value::Object(mut map) => {
            if let Some(target) = lone_ref(&map) {
                map.remove("allOf");
                map.insert("$ref".into(), Value::String(target));
            }
            map.remove("nullable");
            Value::Object(
                map.into_iter()
                    .map(|(key, value)| match (key.as_str(), value) {
                        ("$ref", Value::String(r)) => {
                            let r = r.replace(V3_REFS, V2_REFS);
                            (key, Value::String(r))
                        }
                        // Extension values are data, not schemas.
                        (k, value) if k.starts_with("x-") => (key, value),
                        (_, value) => (key, swagger_schema(value)),
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(swagger_schema).collect()),
        other => other,
    }
}

/// The target of `allOf: [{"$ref": …}]` when that is the schema's only composition.
fn lone_ref(map: &Map<String, Value>) -> Option<String> {
    match map.get("allOf")?.as_array()?.as_slice() {
        [only] if only.as_object()?.len() == 1 => Some(only.get("$ref")?.as_str()?.to_owned()),
        _ => None,
    }
}

/// One representation of the document: its body, media type and `ETag`.
struct Representation {
    body: Vec<u8>,
    content_type: &'static str,
    etag: String,
}

impl Representation {
    fn new(body: Vec<u8>, content_type: &'static str) -> Representation {
        // kube-openapi's ETag: the upper-case hex SHA-512 of the body, quoted.
        let etag = format!("\"{}\"", hex::encode_upper(Sha512::digest(&body)));
        Representation {
            body,
            content_type,
            etag,
        }
    }
}

fn json_representation() -> &'static Representation {
    static JSON: OnceLock<Representation> = OnceLock::new();
    JSON.get_or_init(|| {
        let body = serde_json::to_vec(document()).unwrap_or_default();
        Representation::new(body, "application/json")
    })
}

fn protobuf_representation() -> Result<&'static Representation, ApiError> {
    static PROTOBUF_BODY: OnceLock<Result<Representation, String>> = OnceLock::new();
    let built = PROTOBUF_BODY.get_or_init(|| {
        let message = gnostic::Document::from_json(document()).map_err(|e| e.to_string())?;
        Ok(Representation::new(
            prost::Message::encode_to_vec(&message),
            PROTOBUF_CONTENT_TYPE,
        ))
    });
    built
        .as_ref()
        .map_err(|e| ApiError::Internal(format!("openapi v2 protobuf: {e}")))
}

/// The answer to `GET /openapi/v2`: the first representation the `Accept` header allows (JSON
/// when it names none), or 304 when `If-None-Match` names its `ETag`.
pub fn response(headers: &HeaderMap) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let representation = match negotiate(accept) {
        Some(Form::Json) => json_representation(),
        Some(Form::Protobuf) => protobuf_representation()?,
        None => return Err(ApiError::NotAcceptable),
    };
    let etag = HeaderValue::from_str(&representation.etag)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let vary = (header::VARY, HeaderValue::from_static("Accept"));
    if none_match(headers, &representation.etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag), vary]).into_response());
    }
    let content_type = HeaderValue::from_static(representation.content_type);
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::ETAG, etag),
        vary,
    ];
    Ok((StatusCode::OK, headers, representation.body.clone()).into_response())
}

#[derive(Debug, PartialEq)]
enum Form {
    Json,
    Protobuf,
}

/// The form to serve for an `Accept` header: its media ranges by descending `q`, the first
/// that matches JSON or protobuf (JSON for `*/*` and an empty header).
fn negotiate(accept: &str) -> Option<Form> {
    if accept.trim().is_empty() {
        return Some(Form::Json);
    }
    let mut ranges: Vec<(f32, &str)> = accept
        .split(',')
        .map(|range| {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("");
            let q = params
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse().ok())
                .unwrap_or(1.0);
            (q, media)
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    // A stable sort keeps the client's order among equal weights.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranges.into_iter().find_map(|(_, media)| match media {
        "application/json" | "application/*" | "*/*" => Some(Form::Json),
        PROTOBUF | PROTOBUF_CONTENT_TYPE => Some(Form::Protobuf),
        _ => None,
    })
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare equal, as for GET.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn pod_is_a_definition_with_its_group_version_kind() {
        let doc = document();
        assert_eq!(doc["swagger"], "2.0");
        let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        assert_eq!(
            pod["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        let lease = &doc["definitions"]["io.k8s.api.coordination.v1.Lease"];
        assert_eq!(
            lease["x-kubernetes-group-version-kind"][0]["group"],
            "coordination.k8s.io"
        );
    }

    #[test]
    fn every_ref_resolves_to_a_definition() {
        let doc = document();
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(found.len() > 100, "{}", found.len());
        for r in found {
            let name = r.strip_prefix(V2_REFS).unwrap_or_else(|| panic!("{r}"));
            assert!(doc["definitions"].get(name).is_some(), "{r}");
        }
    }

    #[test]
    fn no_schema_keeps_openapi3_only_keywords() {
        let text = document().to_string();
        for keyword in [
            "\"allOf\"",
            "\"nullable\"",
            "\"oneOf\"",
            "\"anyOf\"",
            V3_REFS,
        ] {
            assert!(!text.contains(keyword), "{keyword}");
        }
    }

    #[test]
    fn the_patch_operation_of_each_kind_takes_field_validation() {
        let doc = document();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        let parameters = patch["parameters"].as_array().unwrap();
        assert!(parameters
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        let v3 = super::super::document("apis/events.k8s.io/v1").unwrap();
        for url in v3["paths"].as_object().unwrap().keys() {
            assert!(doc["paths"].get(url).is_some(), "{url}");
        }
    }

    #[test]
    fn accept_picks_the_form_and_defaults_to_json() {
        assert_eq!(negotiate(""), Some(Form::Json));
        assert_eq!(negotiate("application/json, */*"), Some(Form::Json));
        assert_eq!(negotiate(PROTOBUF), Some(Form::Protobuf));
        assert_eq!(
            negotiate(&format!("application/json;q=0.5, {PROTOBUF}")),
            Some(Form::Protobuf)
        );
        assert_eq!(negotiate("application/yaml"), None);
    }

    #[test]
    fn if_none_match_with_the_etag_answers_304() {
        let etag = json_representation().etag.clone();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag.parse().unwrap());
        let response = response(&headers).unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        headers.insert(header::IF_NONE_MATCH, "\"other\"".parse().unwrap());
        assert_eq!(response_status(&headers), StatusCode::OK);
    }

    fn response_status(headers: &HeaderMap) -> StatusCode {
        response(headers).unwrap().status()
    }
}
