//! Per-resource rules applied on create, update and delete.

use serde_json::{json, Value};

use super::{namespaces, pods, DeleteOptions, Request};
use crate::codec;
use crate::meta;
use crate::resources::Resource;
use crate::status_error::ApiError;

/// What a delete does.
pub enum Deletion {
    /// Remove the object now.
    Now,
    /// Keep it, marked for deletion (graceful pods, finalizers, terminating namespaces).
    Pending(Value),
}

/// Rules for a new object.
pub fn on_create(
    req: &Request,
    object: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    if req.target.res.plural != "pods" {
        validate_metadata(req.target.res, object)?;
    }
    if crate::events::converts(req.target.res) {
        return crate::events::validate_create(object);
    }
    match req.target.res.plural {
        "pods" => pods::admit(req, object, warnings),
        "namespaces" => {
            object["status"] = json!({"phase": "Active"});
            let spec = object.get("spec").cloned().unwrap_or(json!({}));
            if spec.get("finalizers").is_none() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            Ok(())
        }
        "secrets" => {
            let mut secret: k8s_openapi::api::core::v1::Secret = codec::typed(object)?;
            if let Some(string_data) = secret.string_data.take() {
                let data = secret.data.get_or_insert_with(Default::default);
                for (k, v) in string_data {
                    data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
                }
            }
            if secret.type_.is_none() {
                secret.type_ = Some("Opaque".into());
            }
            *object = codec::untyped(&secret);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Metadata rules for kinds other than Pod, whose validation covers its own metadata.
fn validate_metadata(res: &Resource, object: &Value) -> Result<(), ApiError> {
    let metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
        codec::typed(object.get("metadata").unwrap_or(&Value::Null))?;
    let label_name = res.plural == "namespaces";
    coracle_api::validation::validate_metadata(res.kind, &metadata, res.namespaced, label_name)
        .map_err(pods::invalid)
}

/// Follow-ups after a create was stored.
pub fn after_create(req: &Request, stored: &Value) {
    if req.target.res.plural == "namespaces" {
        if let Some(ns) = meta::meta_str(stored, "name") {
            namespaces::ensure_default_service_account(&req.state, ns);
        }
    }
}

/// Rules for an update of `old` into `new`.
pub fn on_update(
    req: &Request,
    new: &mut Value,
    old: &Value,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    match req.target.res.plural {
        "pods" if req.target.sub.is_none() => pods::admit_update(new, old, warnings),
        "pods" => Ok(()),
        "secrets" => on_create(req, new, warnings),
        _ => validate_metadata(req.target.res, new),
    }
}

/// Whether an object marked for deletion goes away once its finalizers are gone (pods wait
/// for the kubelet instead).
pub fn deletes_when_finalized(res: &Resource) -> bool {
    !matches!(res.plural, "pods" | "namespaces")
}

/// What deleting `object` does.
pub fn on_delete(
    req: &Request,
    object: &Value,
    options: &DeleteOptions,
) -> Result<Deletion, ApiError> {
    match req.target.res.plural {
        // A pod deleted at once still waits for its finalizers (the garbage collector's).
        "pods" => Ok(match pods::delete(req, object, options) {
            Deletion::Now if has_finalizers(object) => Deletion::Pending(marked_now(object)),
            deletion => deletion,
        }),
        "namespaces" => namespaces::delete(req, object),
        _ => {
            if !has_finalizers(object) {
                return Ok(Deletion::Now);
            }
            Ok(Deletion::Pending(marked_now(object)))
        }
    }
}

fn has_finalizers(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// The object marked for deletion now, unless it already is.
fn marked_now(object: &Value) -> Value {
    let mut marked = object.clone();
    if object.pointer("/metadata/deletionTimestamp").is_none() {
        let meta = meta::metadata(&mut marked);
        meta.insert("deletionTimestamp".into(), json!(meta::now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    marked
}
