//! coracle-api: the Kubernetes object model as coracle uses it. Pure code, no IO.
//!
//! * [`manifest`] — `load_documents(text, source_name) -> Result<Vec<Object>, ManifestError>`
//!   parses multi-document YAML/JSON into typed [`manifest::Object`]s (Pod, ConfigMap, Secret
//!   and the workloads carrying pod templates), flattening `kind: List` and reporting unknown
//!   fields as warnings.
//! * [`defaults`] — `default_pod(&mut Pod)` and `default_pod_spec(&mut PodSpec)` fill in what
//!   the API server fills in on create; `default_object(&mut Object)` does it for any
//!   manifest object (a workload's pod template included).
//! * [`validation`] — `validate_pod(&Pod)`, `validate_pod_update(new, old)` and
//!   `validate_pod_template(..)` / `validate_object(&mut Object)` return [`validation::ValidationErrors`], whose `Display` is
//!   kube-apiserver's 422 message and whose `causes()` are the `Status` causes.
//! * [`legacy`] — `convert_legacy_init_containers(&mut ObjectMeta, &mut PodSpec)` turns the
//!   pre-1.8 `pod.{alpha,beta}.kubernetes.io/init-containers` annotations into
//!   `spec.initContainers` (coracle's one deliberate difference from upstream, which drops
//!   them silently), `convert_document` does the same on an untyped manifest document, and
//!   `convert_yaml` does it as an edit of a YAML manifest's text.
//! * [`yaml`] — `documents(text)` reads a YAML stream into JSON values by the YAML 1.1 rules
//!   kubectl uses (`0440` is octal 288, `on` is `true`, `<<` merges).
//! * [`printer`] — `pod_status_columns(&Pod, now) -> PodColumns { status, ready, restarts }`,
//!   the STATUS/READY/RESTARTS cells of `kubectl get pods`, and `human_duration`.

pub mod defaults;
pub mod legacy;
pub mod manifest;
pub mod printer;
pub mod validation;
pub mod yaml;

pub use k8s_openapi;
