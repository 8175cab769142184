//! Server-side `Table` responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`),
//! with upstream's columns for each resource. kubectl has no client-side printer for them.

use coracle_api::printer;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};

use crate::resources::Resource;

/// Whether `accept` asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// What rows carry as `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
    /// Nothing.
    None,
}

impl IncludeObject {
    /// From the query parameter.
    pub fn parse(value: Option<&str>) -> IncludeObject {
        match value {
            Some("Object") => IncludeObject::Object,
            Some("None") => IncludeObject::None,
            _ => IncludeObject::Metadata,
        }
    }
}

fn col(name: &str, type_: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description,
           "priority": priority})
}

/// The column definitions of `res`.
pub fn columns(res: &Resource) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.");
    match res.plural {
        "pods" => vec![
            name,
            col("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age,
            col("IP", "string", "", 1, "The IP address assigned to the pod"),
            col("Node", "string", "", 1, "The name of the node assigned to the pod"),
            col("Nominated Node", "string", "", 1, "The name of the node where the pod is nominated to run"),
            col("Readiness Gates", "string", "", 1, "The readiness gates of the pod"),
        ],
        "namespaces" => vec![name, col("Status", "string", "", 0, "The status of the namespace"), age],
        "nodes" => vec![
            name,
            col("Status", "string", "", 0, "The status of the node"),
            col("Roles", "string", "", 0, "The roles of the node"),
            age,
            col("Version", "string", "", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", "", 1, "List of internal IPs for the node."),
            col("External-IP", "string", "", 1, "List of external IPs for the node."),
            col("OS-Image", "string", "", 1, "OS Image reported by the node."),
            col("Kernel-Version", "string", "", 1, "Kernel Version reported by the node."),
            col("Container-Runtime", "string", "", 1, "Container Runtime Version reported by the node."),
        ],
        "configmaps" => vec![name, col("Data", "integer", "", 0, "Number of entries in the data and binaryData"), age],
        "secrets" => vec![
            name,
            col("Type", "string", "", 0, "The type of the secret"),
            col("Data", "integer", "", 0, "The number of entries in the data"),
            age,
        ],
        "serviceaccounts" => vec![name, col("Secrets", "string", "", 0, "The number of secrets"), age],
        "events" => vec![
            col("Last Seen", "string", "", 0, "Time since the most recent occurrence"),
            col("Type", "string", "", 0, "Type of this event (Normal, Warning)"),
            col("Reason", "string", "", 0, "Why the action was taken"),
            col("Object", "string", "", 0, "The object this event is about"),
            col("Subobject", "string", "", 1, "The subobject this event is about"),
            col("Source", "string", "", 1, "The component reporting this event"),
            col("Message", "string", "", 0, "A human-readable description of the status"),
            col("First Seen", "string", "", 1, "Time since the first occurrence"),
            col("Count", "string", "", 1, "How many times this event happened"),
            col("Name", "string", "name", 1, "The name of the event"),
        ],
        "leases" => vec![name, col("Holder", "string", "", 0, "The holder of the lease"), age],
        _ => vec![
            name,
            col("Created At", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
        ],
    }
}

fn time_of(v: &Value) -> Option<Time> {
    v.as_str()?.parse::<Timestamp>().ok().map(Time)
}

fn age_of(v: &Value, now: Timestamp) -> String {
    printer::age(time_of(v).as_ref(), now)
}

fn none_if_empty(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "<none>".to_owned(),
    }
}

/// The cells of one row.
pub fn cells(res: &Resource, o: &Value, now: Timestamp) -> Vec<Value> {
    let name = o.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let age = age_of(&o["metadata"]["creationTimestamp"], now);
    match res.plural {
        "pods" => {
            let pod: Pod = serde_json::from_value(o.clone()).unwrap_or_default();
            let c = printer::pod_status_columns(&pod, now);
            let gates = pod_readiness_gates(o);
            vec![
                name,
                json!(c.ready),
                json!(c.status),
                json!(c.restarts),
                json!(age),
                json!(none_if_empty(
                    o.pointer("/status/podIP").and_then(Value::as_str)
                )),
                json!(none_if_empty(
                    o.pointer("/spec/nodeName").and_then(Value::as_str)
                )),
                json!(none_if_empty(
                    o.pointer("/status/nominatedNodeName")
                        .and_then(Value::as_str)
                )),
                json!(gates),
            ]
        }
        "namespaces" => vec![
            name,
            o.pointer("/status/phase")
                .cloned()
                .unwrap_or(json!("Active")),
            json!(age),
        ],
        "nodes" => {
            let ready = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c["type"] == "Ready")
                        .map(|c| c["status"] == "True")
                });
            let status = match ready {
                Some(true) => "Ready",
                Some(false) => "NotReady",
                None => "Unknown",
            };
            let addr = |t: &str| {
                none_if_empty(
                    o.pointer("/status/addresses")
                        .and_then(Value::as_array)
                        .and_then(|a| {
                            a.iter()
                                .find(|x| x["type"] == t)
                                .and_then(|x| x["address"].as_str())
                        }),
                )
            };
            let info = |f: &str| {
                o.pointer(&format!("/status/nodeInfo/{f}"))
                    .cloned()
                    .unwrap_or(json!(""))
            };
            vec![
                name,
                json!(status),
                json!("control-plane"),
                json!(age),
                info("kubeletVersion"),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                info("osImage"),
                info("kernelVersion"),
                info("containerRuntimeVersion"),
            ]
        }
        "configmaps" => {
            let n = count(o, "data") + count(o, "binaryData");
            vec![name, json!(n), json!(age)]
        }
        "secrets" => vec![
            name,
            o.get("type").cloned().unwrap_or(json!("Opaque")),
            json!(count(o, "data")),
            json!(age),
        ],
        "serviceaccounts" => vec![
            name,
            json!(o
                .get("secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
                .to_string()),
            json!(age),
        ],
        "events" => {
            // Upstream prints both versions from the internal (core) Event.
            let core = crate::events::stored(res, o.clone()).unwrap_or_else(|_| o.clone());
            let o = &core;
            let last = o
                .get("lastTimestamp")
                .filter(|v| !v.is_null())
                .or_else(|| o.get("eventTime"))
                .cloned()
                .unwrap_or(Value::Null);
            let first = o
                .get("firstTimestamp")
                .filter(|v| !v.is_null())
                .or_else(|| o.get("eventTime"))
                .cloned()
                .unwrap_or(Value::Null);
            let obj = &o["involvedObject"];
            let object = format!(
                "{}/{}",
                obj["kind"].as_str().unwrap_or("").to_lowercase(),
                obj["name"].as_str().unwrap_or("")
            );
            let source = match (
                o.pointer("/source/component").and_then(Value::as_str),
                o.pointer("/source/host").and_then(Value::as_str),
            ) {
                (Some(c), Some(h)) => format!("{c}, {h}"),
                (Some(c), None) => c.to_owned(),
                _ => o
                    .get("reportingComponent")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            };
            vec![
                json!(age_of(&last, now)),
                o.get("type").cloned().unwrap_or(json!("")),
                o.get("reason").cloned().unwrap_or(json!("")),
                json!(object),
                obj.get("fieldPath").cloned().unwrap_or(json!("")),
                json!(source),
                o.get("message").cloned().unwrap_or(json!("")),
                json!(age_of(&first, now)),
                json!(o
                    .get("count")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
                    .to_string()),
                name,
            ]
        }
        "leases" => vec![
            name,
            json!(none_if_empty(
                o.pointer("/spec/holderIdentity").and_then(Value::as_str)
            )),
            json!(age),
        ],
        _ => vec![
            name,
            o.pointer("/metadata/creationTimestamp")
                .cloned()
                .unwrap_or(Value::Null),
        ],
    }
}

fn count(o: &Value, field: &str) -> usize {
    o.get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn pod_readiness_gates(o: &Value) -> String {
    let Some(gates) = o.pointer("/spec/readinessGates").and_then(Value::as_array) else {
        return "<none>".into();
    };
    if gates.is_empty() {
        return "<none>".into();
    }
    let conditions = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = gates
        .iter()
        .filter(|g| {
            conditions
                .iter()
                .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
        })
        .count();
    format!("{ready}/{}", gates.len())
}

/// One row, with its object per `include`.
pub fn row(res: &Resource, object: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let mut row = json!({"cells": cells(res, object, now)});
    match include {
        IncludeObject::Object => row["object"] = object.clone(),
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
            });
        }
        IncludeObject::None => {}
    }
    row
}

/// A Table of `objects`. `with_columns` is false for watch events after the first.
pub fn table(
    res: &Resource,
    objects: &[Value],
    resource_version: Option<String>,
    continue_token: Option<String>,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = Timestamp::now();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if with_columns { columns(res) } else { Vec::new() },
        "rows": objects.iter().map(|o| row(res, o, include, now)).collect::<Vec<_>>(),
    })
}
