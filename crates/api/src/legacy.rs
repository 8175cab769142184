//! The pre-1.8 init-container annotations, converted into `spec.initContainers`.
//!
//! Kubernetes 1.3–1.5 carried init containers only in the `pod.alpha.kubernetes.io/…` and
//! `pod.beta.kubernetes.io/init-containers` annotations (a JSON array of containers); 1.6 and
//! 1.7 still honoured them with the beta key winning over the alpha key and both winning over
//! the field. 1.8 and later drop the annotations silently, so such a manifest loses its init
//! containers. coracle instead converts them with the 1.6/1.7 precedence and says so loudly —
//! its one deliberate difference from upstream.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_norway::{Mapping, Value};

use crate::validation::{FieldError, Path, ValidationErrors};

mod edit;

pub use edit::{convert_yaml, ConvertError, ConvertedDocument, ConvertedYaml};

/// The 1.5 (beta) annotation; wins over the alpha one.
pub const BETA_INIT_CONTAINERS: &str = "pod.beta.kubernetes.io/init-containers";
/// The 1.3/1.4 (alpha) annotation.
pub const ALPHA_INIT_CONTAINERS: &str = "pod.alpha.kubernetes.io/init-containers";
/// Status mirrors of the annotations; meaningless in a manifest and dropped.
pub const STATUS_ANNOTATIONS: [&str; 2] = [
    "pod.beta.kubernetes.io/init-container-statuses",
    "pod.alpha.kubernetes.io/init-container-statuses",
];

/// Converts the annotations of a Pod (or pod template) into `spec.initContainers`.
///
/// Returns the warnings to show (empty when there was nothing to convert). The four legacy
/// keys are removed from `meta` whether or not they were used. A value that is not a JSON
/// array of containers is a validation error on `metadata.annotations[<key>]`.
pub fn convert_legacy_init_containers(
    meta: &mut ObjectMeta,
    spec: &mut PodSpec,
) -> Result<Vec<String>, ValidationErrors> {
    let name = meta.name.clone().unwrap_or_default();
    let what = if name.is_empty() {
        "pod template".to_string()
    } else {
        format!("pod {name:?}")
    };
    let Some(annotations) = meta.annotations.as_mut() else {
        return Ok(Vec::new());
    };
    let beta = annotations.remove(BETA_INIT_CONTAINERS);
    let alpha = annotations.remove(ALPHA_INIT_CONTAINERS);
    for key in STATUS_ANNOTATIONS {
        annotations.remove(key);
    }
    if annotations.is_empty() {
        meta.annotations = None;
    }
    let Some((key, text)) = pick(beta, alpha) else {
        return Ok(Vec::new());
    };

    let containers = decode(key, &text, &Path::new("metadata")).map_err(|e| ValidationErrors {
        kind: "Pod".into(),
        name: name.clone(),
        errors: vec![e],
    })?;
    let replaced = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
    let warnings = vec![warning(&what, key, containers.len(), replaced)];
    spec.init_containers = Some(containers);
    Ok(warnings)
}

/// Beta over alpha, as 1.6/1.7 copied the beta value over the alpha key.
fn pick(beta: Option<String>, alpha: Option<String>) -> Option<(&'static str, String)> {
    beta.map(|b| (BETA_INIT_CONTAINERS, b))
        .or(alpha.map(|a| (ALPHA_INIT_CONTAINERS, a)))
}

fn decode(key: &str, text: &str, meta_path: &Path) -> Result<Vec<Container>, FieldError> {
    serde_json::from_str(text).map_err(|e| {
        let detail = format!("must be a JSON array of containers: {e}");
        FieldError::invalid(meta_path.child("annotations").key(key), text, &detail)
    })
}

/// The loud warning: what happened, why it matters on a real cluster, how to migrate.
fn warning(what: &str, key: &str, count: usize, replaced: bool) -> String {
    let replaced = if replaced {
        ", replacing the init containers given in the field"
    } else {
        ""
    };
    format!(
        "{what}: converted the deprecated {key} annotation into spec.initContainers \
         ({count} init container(s){replaced}); a Kubernetes 1.8+ cluster drops this annotation \
         silently and would run the pod WITHOUT these init containers; migrate the manifest \
         with `coracle convert -i FILE`"
    )
}

/// Converts one untyped manifest document in place, keeping its key order.
///
/// Handles Pods, PodTemplates, the workloads with `spec.template` (Deployment, DaemonSet,
/// StatefulSet, ReplicaSet, ReplicationController, Job), CronJobs and `List`s of them;
/// other documents are left alone. Returns the warnings, one per converted pod or template.
pub fn convert_document(doc: &mut Value) -> Result<Vec<String>, ValidationErrors> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    let name = name.unwrap_or("").to_string();
    if kind.ends_with("List") {
        let mut warnings = Vec::new();
        let items = doc.get_mut("items").and_then(Value::as_sequence_mut);
        for item in items.into_iter().flatten() {
            warnings.extend(convert_document(item)?);
        }
        return Ok(warnings);
    }
    let Some(keys) = template_path(&kind) else {
        return Ok(Vec::new());
    };
    let template = keys.iter().try_fold(doc, |node, key| node.get_mut(*key));
    match template {
        Some(t) => convert_pod_like(t, &kind, &name, Path::new(&keys.join("."))),
        None => Ok(Vec::new()),
    }
}

/// Where the pod (template) of an object of `kind` is: the keys from the document's root,
/// none for a Pod; `None` for kinds without one.
fn template_path(kind: &str) -> Option<&'static [&'static str]> {
    let path: &[&str] = match kind {
        "Pod" => &[],
        "PodTemplate" => &["template"],
        "Deployment"
        | "DaemonSet"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => &["spec", "template"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        _ => return None,
    };
    Some(path)
}

/// `obj` has `metadata` and `spec` of a pod; `path` is where it lives in the document.
fn convert_pod_like(
    obj: &mut Value,
    kind: &str,
    name: &str,
    path: Path,
) -> Result<Vec<String>, ValidationErrors> {
    let meta_path = path.child("metadata");
    let Some(annotations) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    else {
        return Ok(Vec::new());
    };
    let Some(map) = annotations.as_mapping_mut() else {
        return Ok(Vec::new());
    };
    let text_of = |v: Option<Value>| v.map(|v| v.as_str().map(str::to_string).unwrap_or_default());
    let beta = text_of(map.shift_remove(BETA_INIT_CONTAINERS));
    let alpha = text_of(map.shift_remove(ALPHA_INIT_CONTAINERS));
    for key in STATUS_ANNOTATIONS {
        map.shift_remove(key);
    }
    if map.is_empty() {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_mapping_mut) {
            m.shift_remove("annotations");
        }
    }
    let Some((key, text)) = pick(beta, alpha) else {
        return Ok(Vec::new());
    };

    let invalid = |e: FieldError| ValidationErrors {
        kind: kind.to_string(),
        name: name.to_string(),
        errors: vec![e],
    };
    let containers = decode(key, &text, &meta_path).map_err(invalid)?;
    // Re-read the JSON untyped so the user's fields come out as written, in their order.
    let untyped: Value = serde_json::from_str(&text).map_err(|e| {
        invalid(FieldError::invalid(
            meta_path.child("annotations").key(key),
            &text,
            &e.to_string(),
        ))
    })?;

    let spec = obj.as_mapping_mut().map(|m| {
        m.entry("spec".into())
            .or_insert(Value::Mapping(Mapping::new()))
    });
    let Some(Value::Mapping(spec)) = spec else {
        return Ok(Vec::new());
    };
    let replaced = spec
        .get("initContainers")
        .and_then(Value::as_sequence)
        .is_some_and(|s| !s.is_empty());
    insert_before(spec, "initContainers", untyped, "containers");

    let what = if path.as_str().is_empty() {
        format!("{kind} {name:?}")
    } else {
        format!("{kind} {name:?} ({path})")
    };
    Ok(vec![warning(&what, key, containers.len(), replaced)])
}

/// Sets `key` in `map`: in place if present, else just before `anchor` (or at the end).
fn insert_before(map: &mut Mapping, key: &str, value: Value, anchor: &str) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
        return;
    }
    if !map.contains_key(anchor) {
        map.insert(key.into(), value);
        return;
    }
    let old = std::mem::take(map);
    let mut value = Some(value);
    for (k, v) in old {
        if k.as_str() == Some(anchor) {
            if let Some(value) = value.take() {
                map.insert(key.into(), value);
            }
        }
        map.insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    const ALPHA_JSON: &str = r#"[{"name":"alpha","image":"busybox"}]"#;
    const BETA_JSON: &str =
        r#"[{"name":"beta-1","image":"busybox"},{"name":"beta-2","image":"busybox"}]"#;

    fn pod(annotations: &[(&str, &str)], field_init: &[&str]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        let ann = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pod.metadata.annotations = Some(ann);
        let init = field_init.iter().map(|n| Container {
            name: n.to_string(),
            ..Default::default()
        });
        pod.spec = Some(PodSpec {
            init_containers: Some(init.collect()),
            ..Default::default()
        });
        pod
    }

    fn init_names(pod: &Pod) -> Vec<String> {
        pod.spec
            .as_ref()
            .unwrap()
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    }

    fn convert(pod: &mut Pod) -> Result<Vec<String>, ValidationErrors> {
        convert_legacy_init_containers(&mut pod.metadata, pod.spec.as_mut().unwrap())
    }

    #[test]
    fn beta_annotation_wins_over_alpha_and_the_field() {
        let mut p = pod(
            &[
                (ALPHA_INIT_CONTAINERS, ALPHA_JSON),
                (BETA_INIT_CONTAINERS, BETA_JSON),
            ],
            &["field"],
        );
        let warnings = convert(&mut p).unwrap();
        assert_eq!(init_names(&p), ["beta-1", "beta-2"]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("Kubernetes 1.8+"), "{}", warnings[0]);
        assert!(warnings[0].contains("coracle convert"));
        assert!(warnings[0].contains("replacing"));
    }

    #[test]
    fn alpha_annotation_wins_over_the_field() {
        let mut p = pod(&[(ALPHA_INIT_CONTAINERS, ALPHA_JSON)], &["field"]);
        convert(&mut p).unwrap();
        assert_eq!(init_names(&p), ["alpha"]);
    }

    #[test]
    fn all_legacy_keys_are_removed_and_other_annotations_kept() {
        let mut p = pod(
            &[
                (BETA_INIT_CONTAINERS, BETA_JSON),
                (STATUS_ANNOTATIONS[0], "[]"),
                ("keep", "me"),
            ],
            &[],
        );
        convert(&mut p).unwrap();
        let ann = p.metadata.annotations.unwrap();
        assert_eq!(ann.keys().collect::<Vec<_>>(), ["keep"]);
    }

    #[test]
    fn pod_without_annotations_is_untouched() {
        let mut p = pod(&[("keep", "me")], &["field"]);
        assert!(convert(&mut p).unwrap().is_empty());
        assert_eq!(init_names(&p), ["field"]);
    }

    #[test]
    fn bad_json_is_a_validation_error_on_the_annotation() {
        let mut p = pod(&[(BETA_INIT_CONTAINERS, "[{not json")], &[]);
        let err = convert(&mut p).unwrap_err();
        assert_eq!(
            err.errors[0].path.as_str(),
            "metadata.annotations[pod.beta.kubernetes.io/init-containers]"
        );
        assert!(err.to_string().starts_with("Pod \"web\" is invalid: metadata.annotations[pod.beta.kubernetes.io/init-containers]: Invalid value: \"[{not json\": must be a JSON array of containers"), "{err}");
    }

    #[test]
    fn untyped_deployment_template_is_converted_in_key_order() {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    metadata:\n      annotations:\n        {BETA_INIT_CONTAINERS}: '{BETA_JSON}'\n    spec:\n      volumes: []\n      containers: [{{name: app, image: busybox}}]\n"
        );
        let mut doc: Value = serde_norway::from_str(&text).unwrap();
        let warnings = convert_document(&mut doc).unwrap();
        assert!(
            warnings[0].starts_with("Deployment \"d\" (spec.template): converted"),
            "{}",
            warnings[0]
        );
        let out = serde_norway::to_string(&doc).unwrap();
        assert!(!out.contains("annotations"), "{out}");
        let vol = out.find("volumes").unwrap();
        let init = out.find("initContainers").unwrap();
        let ctr = out.find("  containers").unwrap();
        assert!(vol < init && init < ctr, "{out}");
        assert!(out.find("name: beta-1").unwrap() < out.find("image: busybox").unwrap());
    }
}
