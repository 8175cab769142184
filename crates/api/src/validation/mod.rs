//! Validation of Pods and pod templates, as kube-apiserver does it on create and update.
//!
//! Every failure is a [`FieldError`] naming its field path in upstream's format
//! (`spec.initContainers[0].name`); all failures are collected before returning, and
//! [`ValidationErrors`] renders them exactly like kube-apiserver's 422 message
//! (`Pod "x" is invalid: [a: Required value, b: …]`).

mod container;
mod errors;
mod meta;
mod probe;
mod resources;
mod spec;
mod update;
mod volume;

pub use errors::{ErrorKind, ErrorValue, FieldError, Path, ValidationErrors};
pub use meta::qualified_name;
pub use resources::{parse_quantity, QuantityError};
pub use update::validate_pod_update;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};

use crate::manifest::Object;

/// Validates a Pod about to be created: metadata, then the whole spec.
///
/// Call it on a defaulted Pod (see [`crate::defaults::default_pod`]); fields the API server
/// fills in (restart policy, termination message path, …) are required here as they are
/// upstream.
pub fn validate_pod(pod: &Pod) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    meta::validate_object_meta(&pod.metadata, true, &Path::new("metadata"), &mut errs);
    match &pod.spec {
        Some(spec) => spec::validate_pod_spec(spec, &Path::new("spec"), false, &mut errs),
        None => errs.push(FieldError::required(
            Path::new("spec").child("containers"),
            "",
        )),
    }
    ValidationErrors::check("Pod", pod.metadata.name.as_deref().unwrap_or(""), errs)
}

/// Validates the pod template of a workload (`spec.template` of a Deployment, Job, …).
///
/// `kind` and `name` are those of the owning object and only appear in the error message;
/// `path` is where the template lives, e.g. `spec.template`.
pub fn validate_pod_template(
    template: &PodTemplateSpec,
    kind: &str,
    name: &str,
    path: &Path,
) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    if let Some(metadata) = &template.metadata {
        let meta_path = path.child("metadata");
        meta::validate_labels(
            metadata.labels.as_ref(),
            &meta_path.child("labels"),
            &mut errs,
        );
        meta::validate_annotations(
            metadata.annotations.as_ref(),
            &meta_path.child("annotations"),
            &mut errs,
        );
    }
    match &template.spec {
        Some(spec) => spec::validate_pod_spec(spec, &path.child("spec"), true, &mut errs),
        None => errs.push(FieldError::required(
            path.child("spec").child("containers"),
            "",
        )),
    }
    ValidationErrors::check(kind, name, errs)
}

/// Validates any manifest object: a Pod fully, a workload's metadata and pod template
/// (`spec.template`), a ConfigMap's or Secret's metadata.
pub fn validate_object(object: &mut Object) -> Result<(), ValidationErrors> {
    if let Object::Pod(pod) = object {
        return validate_pod(pod);
    }
    let (kind, name) = (object.kind(), object.name().to_string());
    let mut errs = Vec::new();
    meta::validate_object_meta(object.metadata(), true, &Path::new("metadata"), &mut errs);
    let path = Path::new("spec").child("template");
    if let Some(template) = object.pod_template_mut() {
        if let Err(e) = validate_pod_template(template, kind, &name, &path) {
            errs.extend(e.errors);
        }
    }
    ValidationErrors::check(kind, &name, errs)
}

/// Validates the metadata of an object of another kind than Pod (ConfigMap, Secret,
/// Namespace, ServiceAccount, …) as kube-apiserver's `ValidateObjectMeta` does: the name is a
/// DNS subdomain, or a DNS label where `label_name` (namespaces), and labels and annotations
/// are well formed.
pub fn validate_metadata(
    kind: &str,
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespaced: bool,
    label_name: bool,
) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    let path = Path::new("metadata");
    meta::validate_object_meta(metadata, namespaced, &path, &mut errs);
    let name = metadata.name.as_deref().unwrap_or("");
    if label_name && !name.is_empty() {
        // The subdomain messages are replaced by the label ones.
        let name_path = path.child("name");
        errs.retain(|e| e.path.as_str() != name_path.as_str());
        for msg in meta::dns1123_label(name) {
            errs.push(FieldError::invalid(path.child("name"), name, &msg));
        }
    }
    ValidationErrors::check(kind, name, errs)
}

#[cfg(test)]
mod tests;
