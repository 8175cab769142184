//! Manifests: multi-document YAML or JSON into typed objects.
//!
//! Documents are separated by `---`; empty documents are skipped and `kind: List` items are
//! flattened. YAML is read as kubectl reads it (see [`crate::yaml`]), so `defaultMode: 0440` is
//! the octal 288 and not the string `"0440"`. Fields the typed model does not know are reported
//! as warnings in kubectl's strict-decoding words (`unknown field "spec.containers[0].imagee"`),
//! because the typed object silently drops them. Secret `stringData` is merged into `data` as
//! the API server does.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde_json::Value;

/// Kinds coracle accepts, for error messages.
const SUPPORTED: &str = "v1 Pod, ConfigMap, Secret; apps/v1 Deployment, DaemonSet, StatefulSet, \
    ReplicaSet; batch/v1 Job";

/// Why a manifest could not be loaded. Every variant names the file and document.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML, or holds a value JSON cannot carry (`.inf`, a null key, …).
    #[error("{source_name}: document {document}: cannot parse YAML")]
    Yaml {
        /// File (or other origin) of the text.
        source_name: String,
        /// 1-based document number.
        document: usize,
        /// The parser's complaint, with its line.
        #[source]
        source: crate::yaml::YamlError,
    },
    /// The text looked like JSON and is not.
    #[error("{source_name}: document {document}: cannot parse JSON")]
    Json {
        /// File (or other origin) of the text.
        source_name: String,
        /// 1-based document number.
        document: usize,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A document is not a mapping with `apiVersion` and `kind`.
    #[error("{source_name}: document {document}: not a Kubernetes object ({reason})")]
    NotAnObject {
        /// File (or other origin) of the text.
        source_name: String,
        /// 1-based document number (with the List item, if any).
        document: String,
        /// What is missing.
        reason: String,
    },
    /// The kind is one coracle does not run.
    #[error(
        "{source_name}: document {document}: unsupported object apiVersion {api_version:?} \
         kind {kind:?} (coracle accepts {SUPPORTED})"
    )]
    Unsupported {
        /// File (or other origin) of the text.
        source_name: String,
        /// 1-based document number (with the List item, if any).
        document: String,
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
    /// The fields do not fit the kind's schema (wrong types and the like).
    #[error("{source_name}: document {document}: cannot decode {kind}")]
    Decode {
        /// File (or other origin) of the text.
        source_name: String,
        /// 1-based document number (with the List item, if any).
        document: String,
        /// The document's kind.
        kind: String,
        /// serde's complaint, naming the offending field.
        #[source]
        source: serde_json::Error,
    },
}

/// One typed object of a manifest.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    /// A v1 Pod.
    Pod(Pod),
    /// A v1 ConfigMap.
    ConfigMap(ConfigMap),
    /// A v1 Secret (`stringData` already merged into `data`).
    Secret(Secret),
    /// An apps/v1 Deployment.
    Deployment(Deployment),
    /// An apps/v1 DaemonSet.
    DaemonSet(DaemonSet),
    /// An apps/v1 StatefulSet.
    StatefulSet(StatefulSet),
    /// An apps/v1 ReplicaSet.
    ReplicaSet(ReplicaSet),
    /// A batch/v1 Job.
    Job(Job),
}

impl Object {
    /// The object's kind, as written in manifests.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Deployment(_) => "Deployment",
            Object::DaemonSet(_) => "DaemonSet",
            Object::StatefulSet(_) => "StatefulSet",
            Object::ReplicaSet(_) => "ReplicaSet",
            Object::Job(_) => "Job",
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Pod(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::DaemonSet(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::ReplicaSet(o) => &o.metadata,
            Object::Job(o) => &o.metadata,
        }
    }

    /// The object's metadata, mutably.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Pod(o) => &mut o.metadata,
            Object::ConfigMap(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
            Object::Deployment(o) => &mut o.metadata,
            Object::DaemonSet(o) => &mut o.metadata,
            Object::StatefulSet(o) => &mut o.metadata,
            Object::ReplicaSet(o) => &mut o.metadata,
            Object::Job(o) => &mut o.metadata,
        }
    }

    /// The object's name (empty when only `generateName` is given).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// The pod template of a workload; `None` for Pods, ConfigMaps and Secrets.
    pub fn pod_template_mut(&mut self) -> Option<&mut PodTemplateSpec> {
        match self {
            Object::Deployment(o) => o.spec.as_mut().map(|s| &mut s.template),
            Object::DaemonSet(o) => o.spec.as_mut().map(|s| &mut s.template),
            Object::StatefulSet(o) => o.spec.as_mut().map(|s| &mut s.template),
            Object::ReplicaSet(o) => o.spec.as_mut().and_then(|s| s.template.as_mut()),
            Object::Job(o) => o.spec.as_mut().map(|s| &mut s.template),
            Object::Pod(_) | Object::ConfigMap(_) | Object::Secret(_) => None,
        }
    }
}

/// The typed objects of a manifest and the warnings met while reading them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// Objects in document order, List items in place of their List.
    pub objects: Vec<Object>,
    /// `<source>: document N: unknown field "path"` lines.
    pub warnings: Vec<String>,
}

/// Parses `text` (YAML or JSON, one or more documents) into typed objects.
///
/// `source_name` (usually the file name) prefixes every error. Use [`load`] to also get the
/// unknown-field warnings.
pub fn load_documents(text: &str, source_name: &str) -> Result<Vec<Object>, ManifestError> {
    Ok(load(text, source_name)?.objects)
}

/// Like [`load_documents`], also returning unknown-field warnings.
pub fn load(text: &str, source_name: &str) -> Result<Loaded, ManifestError> {
    let mut loaded = Loaded::default();
    for (i, doc) in split_documents(text, source_name)?.into_iter().enumerate() {
        let label = (i + 1).to_string();
        decode_value(doc, source_name, &label, &mut loaded)?;
    }
    Ok(loaded)
}

/// The documents of `text` as untyped JSON values; empty documents become `Null`.
pub fn split_documents(text: &str, source_name: &str) -> Result<Vec<Value>, ManifestError> {
    let trimmed = text.trim_start();
    let mut docs = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        for (i, doc) in serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .enumerate()
        {
            let source = source_name.to_string();
            docs.push(doc.map_err(|e| ManifestError::Json {
                source_name: source,
                document: i + 1,
                source: e,
            })?);
        }
        return Ok(docs);
    }
    for (i, doc) in crate::yaml::documents(text).enumerate() {
        let doc = doc.map_err(|e| ManifestError::Yaml {
            source_name: source_name.to_string(),
            document: i + 1,
            source: e,
        })?;
        docs.push(doc);
    }
    Ok(docs)
}

fn decode_value(
    doc: Value,
    source_name: &str,
    label: &str,
    out: &mut Loaded,
) -> Result<(), ManifestError> {
    let not_object = |reason: &str| ManifestError::NotAnObject {
        source_name: source_name.to_string(),
        document: label.to_string(),
        reason: reason.to_string(),
    };
    let map = match &doc {
        Value::Null => return Ok(()),
        Value::Array(items) => {
            for (j, item) in items.iter().enumerate() {
                decode_value(
                    item.clone(),
                    source_name,
                    &format!("{label}: items[{j}]"),
                    out,
                )?;
            }
            return Ok(());
        }
        Value::Object(map) => map,
        _ => return Err(not_object("expected a mapping")),
    };
    let field = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if kind.is_empty() {
        return Err(not_object("missing kind"));
    }
    if api_version.is_empty() {
        return Err(not_object("missing apiVersion"));
    }
    if kind == "List" || kind.ends_with("List") && map.contains_key("items") {
        let items = map
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (j, item) in items.into_iter().enumerate() {
            decode_value(item, source_name, &format!("{label}: items[{j}]"), out)?;
        }
        return Ok(());
    }

    let decode_err = |e| ManifestError::Decode {
        source_name: source_name.to_string(),
        document: label.to_string(),
        kind: kind.clone(),
        source: e,
    };
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Pod") => Object::Pod(typed(&doc).map_err(decode_err)?),
        ("v1", "ConfigMap") => Object::ConfigMap(typed(&doc).map_err(decode_err)?),
        ("v1", "Secret") => Object::Secret(typed(&doc).map_err(decode_err)?),
        ("apps/v1", "Deployment") => Object::Deployment(typed(&doc).map_err(decode_err)?),
        ("apps/v1", "DaemonSet") => Object::DaemonSet(typed(&doc).map_err(decode_err)?),
        ("apps/v1", "StatefulSet") => Object::StatefulSet(typed(&doc).map_err(decode_err)?),
        ("apps/v1", "ReplicaSet") => Object::ReplicaSet(typed(&doc).map_err(decode_err)?),
        ("batch/v1", "Job") => Object::Job(typed(&doc).map_err(decode_err)?),
        _ => {
            return Err(ManifestError::Unsupported {
                source_name: source_name.to_string(),
                document: label.to_string(),
                api_version,
                kind,
            })
        }
    };
    let typed_value = object_value(&object);
    for path in unknown_fields(&doc, &typed_value) {
        out.warnings.push(format!(
            "{source_name}: document {label}: unknown field \"{path}\""
        ));
    }
    out.objects.push(finish(object));
    Ok(())
}

fn typed<T: serde::de::DeserializeOwned>(doc: &Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(doc.clone())
}

fn object_value(object: &Object) -> Value {
    let v = match object {
        Object::Pod(o) => serde_json::to_value(o),
        Object::ConfigMap(o) => serde_json::to_value(o),
        Object::Secret(o) => serde_json::to_value(o),
        Object::Deployment(o) => serde_json::to_value(o),
        Object::DaemonSet(o) => serde_json::to_value(o),
        Object::StatefulSet(o) => serde_json::to_value(o),
        Object::ReplicaSet(o) => serde_json::to_value(o),
        Object::Job(o) => serde_json::to_value(o),
    };
    v.unwrap_or(Value::Null)
}

/// Post-decoding fix-ups the API server makes: Secret `stringData` into `data`.
fn finish(object: Object) -> Object {
    match object {
        Object::Secret(mut s) => {
            if let Some(string_data) = s.string_data.take() {
                let data = s.data.get_or_insert_with(Default::default);
                for (k, v) in string_data {
                    data.insert(k, ByteString(v.into_bytes()));
                }
            }
            Object::Secret(s)
        }
        other => other,
    }
}

/// Dotted paths of the fields in `input` that did not survive into `typed`.
pub fn unknown_fields(input: &Value, typed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, typed, "", &mut out);
    out
}

fn walk(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => walk(v, tv, &child, out),
                    // An explicit null is the same as absent.
                    None if !v.is_null() => out.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                walk(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: busybox}]\n";

    #[test]
    fn multi_document_yaml_skips_empty_documents() {
        let text = format!("---\n{POD}---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\ndata: {{a: b}}\n");
        let objs = load_documents(&text, "m.yaml").unwrap();
        assert_eq!(
            objs.iter().map(Object::kind).collect::<Vec<_>>(),
            ["Pod", "ConfigMap"]
        );
        assert_eq!(objs[0].name(), "web");
    }

    #[test]
    fn json_documents_are_accepted() {
        let text = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"c","image":"b"}]}}"#;
        assert_eq!(load_documents(text, "p.json").unwrap()[0].name(), "j");
    }

    #[test]
    fn list_items_are_flattened() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n";
        let objs = load_documents(text, "l.yaml").unwrap();
        assert_eq!(
            objs.iter().map(Object::name).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn unsupported_kind_names_file_document_and_kind() {
        let text = format!("{POD}---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n");
        let err = load_documents(&text, "pod.yaml").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "pod.yaml: document 2: unsupported object apiVersion \"v1\" kind \"Service\""
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_yaml_names_the_document() {
        let text = format!("{POD}---\nfoo: [unclosed\n");
        let err = load_documents(&text, "pod.yaml").unwrap_err().to_string();
        assert_eq!(err, "pod.yaml: document 2: cannot parse YAML");
    }

    #[test]
    fn bad_yaml_error_carries_the_parsers_line() {
        let text = format!("{POD}---\nfoo: [unclosed\n");
        let err = load_documents(&text, "pod.yaml").unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("line 8"), "{source}");
    }

    #[test]
    fn yaml_1_1_octal_modes_reach_the_typed_pod() {
        let text = format!(
            "{POD}  volumes: [{{name: s, secret: {{secretName: s, defaultMode: 0440}}}}]\n"
        );
        let Object::Pod(pod) = load_documents(&text, "pod.yaml").unwrap().remove(0) else {
            panic!()
        };
        let volumes = pod.spec.unwrap().volumes.unwrap();
        assert_eq!(volumes[0].secret.as_ref().unwrap().default_mode, Some(288));
    }

    #[test]
    fn infinite_numbers_name_the_document() {
        let text =
            format!("{POD}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\nx: .inf\n");
        let err = load_documents(&text, "m.yaml").unwrap_err();
        assert_eq!(err.to_string(), "m.yaml: document 2: cannot parse YAML");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.starts_with(".inf at line 10 column 4"), "{source}");
    }

    #[test]
    fn unknown_fields_are_warned_with_their_path() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, creationTimestamp: null}\nspec:\n  containers:\n  - name: c\n    imagee: busybox\n    resources: {limits: {cpu: 1}}\n";
        let loaded = load(text, "pod.yaml").unwrap();
        assert_eq!(
            loaded.warnings,
            ["pod.yaml: document 1: unknown field \"spec.containers[0].imagee\""]
        );
    }

    #[test]
    fn secret_string_data_is_merged_into_data() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: YQ==}\nstringData: {a: override, b: bee}\n";
        let Object::Secret(s) = load_documents(text, "s.yaml").unwrap().remove(0) else {
            panic!()
        };
        let data = s.data.unwrap();
        assert_eq!(data["a"].0, b"override");
        assert_eq!(data["b"].0, b"bee");
        assert!(s.string_data.is_none());
    }

    #[test]
    fn workloads_expose_their_pod_template() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: b}]}\n";
        let mut obj = load_documents(text, "d.yaml").unwrap().remove(0);
        assert_eq!(
            obj.pod_template_mut()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .name,
            "c"
        );
    }
}
