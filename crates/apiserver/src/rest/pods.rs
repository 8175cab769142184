//! Pods: defaulting, legacy annotation conversion, validation and binding on admission, and
//! graceful deletion (the kubelet stops the pod; the object goes once it says removed).

use axum::http::StatusCode;
use axum::response::Response;
use coracle_api::validation::ValidationErrors;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::admission::Deletion;
use super::{pod_admission, DeleteOptions, Request};
use crate::codec;
use crate::meta;
use crate::scheduler;
use crate::status_error::{ApiError, Cause};

/// A validation failure as the 422 Status.
pub fn invalid(errors: ValidationErrors) -> ApiError {
    ApiError::Invalid {
        kind: errors.kind.clone(),
        name: errors.name.clone(),
        message: errors.to_string(),
        causes: errors
            .causes()
            .into_iter()
            .map(|c| Cause {
                reason: c.reason.unwrap_or_default(),
                message: c.message.unwrap_or_default(),
                field: c.field.unwrap_or_default(),
            })
            .collect(),
    }
}

/// Admission of a new pod: legacy conversion (with its warning), defaults, the mutating
/// admission plugins ([`pod_admission`]), validation, and the scheduler's fast path
/// ([`scheduler::admit`]), in kube-apiserver's order (admission before validation).
pub fn admit(
    req: &Request,
    object: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    let mut pod: Pod = codec::typed(object)?;
    let mut spec = pod.spec.take().unwrap_or_default();
    let converted =
        coracle_api::legacy::convert_legacy_init_containers(&mut pod.metadata, &mut spec)
            .map_err(invalid)?;
    warnings.extend(converted);
    pod.spec = Some(spec);
    coracle_api::defaults::default_pod(&mut pod);
    pod_admission::admit(&req.state, &mut pod)?;
    coracle_api::validation::validate_pod(&pod).map_err(invalid)?;

    *object = codec::untyped(&pod);
    let conditions = scheduler::admit(&req.state, object)
        .map_err(|err| ApiError::Internal(format!("scheduling: {err}")))?;
    let mut status = json!({
        "phase": "Pending",
        // Set on create, as kube-apiserver's pod strategy does.
        "qosClass": coracle_kubelet::status::qos_class(&pod),
    });
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    object["status"] = status;
    Ok(())
}

/// Admission of a pod update: defaults and upstream's update rules.
pub fn admit_update(
    new: &mut Value,
    old: &Value,
    _warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    let mut pod: Pod = codec::typed(new)?;
    let old_pod: Pod = codec::typed(old)?;
    coracle_api::defaults::default_pod(&mut pod);
    coracle_api::validation::validate_pod_update(&pod, &old_pod).map_err(invalid)?;
    let status = new.get("status").cloned();
    *new = codec::untyped(&pod);
    if let Some(status) = status {
        new["status"] = status;
    }
    Ok(())
}

/// Deleting a pod: a bound pod is marked and left to the kubelet unless the grace period is 0.
pub fn delete(_req: &Request, object: &Value, options: &DeleteOptions) -> Deletion {
    let bound = object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let pod_grace = object
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    let grace = options.grace.unwrap_or(pod_grace).max(0);
    if !bound || grace == 0 {
        return Deletion::Now;
    }
    let mut marked = object.clone();
    let current = object
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if current.is_some_and(|c| c <= grace) {
        return Deletion::Pending(marked);
    }
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
    let meta = meta::metadata(&mut marked);
    meta.insert(
        "deletionTimestamp".into(),
        json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
    );
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    Deletion::Pending(marked)
}

/// `POST pods/<name>/binding`: sets `spec.nodeName` of an unbound pod.
pub fn bind(req: &Request, name: &str) -> Result<Response, ApiError> {
    let binding = codec::parse_json(&req.body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let (rev, mut pod) = req.read(name)?;
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        return Err(ApiError::Conflict {
            resource: "pods".into(),
            name: name.to_owned(),
            reason: format!(
                "pod {name} is already assigned to node {:?}",
                pod["spec"]["nodeName"]
            ),
        });
    }
    pod["spec"]["nodeName"] = json!(node);
    // Upstream's binding storage marks the pod scheduled as it sets the node.
    let scheduled = json!({"type": "PodScheduled", "status": "True",
                           "lastProbeTime": null, "lastTransitionTime": meta::now()});
    match pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        Some(list) => {
            list.retain(|c| c["type"] != "PodScheduled");
            list.insert(0, scheduled);
        }
        None => pod["status"]["conditions"] = json!([scheduled]),
    }
    let key = req
        .state
        .key(req.target.res, req.target.namespace.as_deref(), name)?;
    req.state
        .store
        .update(&key, pod, Some(rev))
        .map_err(|e| ApiError::from_store(e, "pods", name))?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(super::json_response(StatusCode::CREATED, &status, &[]))
}
