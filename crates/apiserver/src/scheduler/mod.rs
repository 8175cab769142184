//! The scheduler: what kube-scheduler's default profile does for the one node.
//!
//! A new pod that fits is bound at admission ([`admit`]), so pod start latency does not
//! depend on this task; one that does not fit is created unbound. The task ([`run`]) then
//! takes every unbound pod of `default-scheduler`, oldest first, whenever the store changed
//! (a pod deleted or finished frees room, `kubectl label node` or `kubectl taint` changes the
//! node): a pod that now fits is bound (`spec.nodeName`, `PodScheduled=True`), as the binding
//! subresource does upstream, and the kubelet on the node starts it and reports `Scheduled`; one
//! that still does not fit gets `PodScheduled=False`, reason `Unschedulable`, with
//! `FitError`'s text ([`filter`]) and a `Warning FailedScheduling` event from
//! `default-scheduler`, as upstream's failure handler records them.
//!
//! Pods that name a node (`spec.nodeName`) skip the scheduler, as upstream: one naming another
//! node stays Pending, there being no kubelet for it. Pods with scheduling gates wait with
//! `PodScheduled=False`, reason `SchedulingGated`, until their gates are removed; pods of
//! another `schedulerName` are left alone.
//!
//! Both admission and the task decide under one lock ([`decisions`]), held by a pod create
//! until the pod is stored, so two pods never both take the last room.
//!
//! # Caveats
//!
//! The task looks at the store when its revision moved (at most four times a second), where
//! upstream's queue moves a pod back to be retried on the cluster events its plugins name. A
//! retry that fails with the same message as before writes nothing and records no new event
//! (upstream records the event again, which `kubectl describe` shows as `(x2 over …)`).
//! There is no preemption ([`filter`] says what its postfix reports) and no scoring: with
//! one node there is nothing to rank.

pub mod filter;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use coracle_store::{Key, ListOptions, Prefix, Store, StoreError};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use crate::fieldmanager;
use crate::meta;
use crate::state::{stopped, ApiState};

/// The scheduler's name, as pods ask for it and events report it.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// `ErrNoNodesAvailable`'s text, when no node is registered (the kubelet did not start).
pub const NO_NODES: &str = "no nodes available to schedule pods";
/// The pod strategy's message for a pod with scheduling gates.
const GATED_MESSAGE: &str = "Scheduling is blocked due to non-empty scheduling gates";

/// Errors of a scheduling pass.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The store could not be read or written.
    #[error("store")]
    Store(#[from] StoreError),
    /// A stored object does not decode as its kind.
    #[error("{kind} {name:?} does not decode")]
    Decode {
        /// `Pod` or `Node`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

static DECISIONS: Mutex<()> = Mutex::new(());

/// Holds off every other scheduling decision: taken by a pod create until the pod is stored,
/// and by each pass of the task.
pub fn decisions() -> MutexGuard<'static, ()> {
    DECISIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the scheduler sees: the node (if registered) and its non-terminal pods.
pub struct Snapshot {
    /// The node.
    pub node: Option<Node>,
    /// The pods bound to it that are not `Succeeded` or `Failed`, as upstream's scheduler
    /// cache counts them.
    pub on_node: Vec<Pod>,
}

impl Snapshot {
    /// Reads the node `node_name` and the pods bound to it.
    pub fn read(store: &Store, node_name: &str) -> Result<(Snapshot, Vec<Value>), SchedulerError> {
        let key = Key::cluster("", "nodes", node_name)?;
        let node = match store.get(&key)? {
            Some((_, object)) => Some(decode::<Node>("Node", object)?),
            None => None,
        };
        let prefix = Prefix::resource("", "pods")?;
        let pods = store.list(&prefix, &ListOptions::default())?.items;
        let on_node = pods
            .iter()
            .filter(|p| node_of(p) == Some(node_name) && !terminal(p))
            .map(|p| decode::<Pod>("Pod", p.clone()))
            .collect::<Result<_, _>>()?;
        Ok((Snapshot { node, on_node }, pods))
    }

    /// `None` when `pod` fits the node, otherwise the `PodScheduled=False` message.
    pub fn unschedulable(&self, pod: &Pod) -> Option<String> {
        match &self.node {
            Some(node) => filter::unschedulable_message(pod, node, &self.on_node),
            None => Some(NO_NODES.to_owned()),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    object: Value,
) -> Result<T, SchedulerError> {
    let name = meta::meta_str(&object, "name").unwrap_or("").to_owned();
    serde_json::from_value(object).map_err(|source| SchedulerError::Decode { kind, name, source })
}

fn node_of(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the scheduler should place `pod`: unbound, not being deleted, ours, not gated.
fn wants_scheduling(pod: &Value) -> bool {
    let gates = pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty());
    let scheduler = pod.pointer("/spec/schedulerName").and_then(Value::as_str);
    node_of(pod).is_none()
        && pod.pointer("/metadata/deletionTimestamp").is_none()
        && !gates
        && scheduler.unwrap_or(SCHEDULER_NAME) == SCHEDULER_NAME
}

fn condition(status: &str, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut c = json!({"type": "PodScheduled", "status": status,
                       "lastProbeTime": null, "lastTransitionTime": meta::now()});
    if let Some(reason) = reason {
        c["reason"] = json!(reason);
    }
    if let Some(message) = message {
        c["message"] = json!(message);
    }
    c
}

/// Admission's part for a new pod (under [`decisions`], held by the create): binds it when it
/// fits now, and returns the conditions its first status carries.
pub fn admit(state: &ApiState, pod: &mut Value) -> Result<Vec<Value>, SchedulerError> {
    let gated = pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty());
    if gated && node_of(pod).is_none() {
        // As the pod strategy's PrepareForCreate marks a gated pod.
        return Ok(vec![condition(
            "False",
            Some("SchedulingGated"),
            Some(GATED_MESSAGE),
        )]);
    }
    if !wants_scheduling(pod) {
        return Ok(Vec::new());
    }
    let (snapshot, _) = Snapshot::read(&state.store, &state.node_name)?;
    let typed: Pod = decode("Pod", pod.clone())?;
    if snapshot.unschedulable(&typed).is_some() {
        // The task records why, with its event, once the pod is stored.
        return Ok(Vec::new());
    }
    pod["spec"]["nodeName"] = json!(state.node_name);
    Ok(vec![condition("True", None, None)])
}

/// Runs until shutdown.
pub async fn run(state: Arc<ApiState>) {
    let mut shutdown = state.shutdown.clone();
    let mut seen = 0;
    loop {
        let revision = state.store.current_revision();
        if revision != seen {
            seen = revision;
            if let Err(err) = schedule_pending(&state) {
                tracing::warn!("scheduling: {err}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// One pass: every pod waiting for the scheduler, oldest first, bound or told why not.
fn schedule_pending(state: &ApiState) -> Result<(), SchedulerError> {
    let _decisions = decisions();
    let (mut snapshot, pods) = Snapshot::read(&state.store, &state.node_name)?;
    let mut pending: Vec<&Value> = pods.iter().filter(|p| wants_scheduling(p)).collect();
    pending.sort_by_key(|p| {
        (
            meta::meta_str(p, "creationTimestamp")
                .unwrap_or("")
                .to_owned(),
            meta::meta_str(p, "name").unwrap_or("").to_owned(),
        )
    });

    for object in pending {
        let pod: Pod = decode("Pod", object.clone())?;
        match snapshot.unschedulable(&pod) {
            None => {
                if bind(&state.store, object, &state.node_name)? {
                    // Later pods of this pass see the room it took.
                    let mut bound = pod;
                    bound.spec.get_or_insert_with(Default::default).node_name =
                        Some(state.node_name.clone());
                    snapshot.on_node.push(bound);
                }
            }
            Some(message) => {
                if mark_unschedulable(&state.store, object, &message)? {
                    record_failed_scheduling(&state.store, object, &message, &state.node_name);
                }
            }
        }
    }
    Ok(())
}

fn pod_key(pod: &Value) -> Result<Key, StoreError> {
    let ns = meta::meta_str(pod, "namespace").unwrap_or("default");
    Key::namespaced("", "pods", ns, meta::meta_str(pod, "name").unwrap_or(""))
}

/// Applies `change` to the stored pod if it is still this one and still unbound.
fn update_unbound(
    store: &Store,
    pod: &Value,
    change: impl FnOnce(&mut Value) -> bool,
) -> Result<bool, SchedulerError> {
    let uid = meta::meta_str(pod, "uid").unwrap_or("").to_owned();
    let mut changed = false;
    store.guaranteed_update::<StoreError, _>(&pod_key(pod)?, |current| {
        let Some(mut object) = current else {
            return Ok(None);
        };
        if meta::meta_str(&object, "uid") != Some(uid.as_str()) || !wants_scheduling(&object) {
            return Ok(None);
        }
        changed = change(&mut object);
        Ok(changed.then_some(object))
    })?;
    Ok(changed)
}

/// Puts `condition` first in the pod's conditions in place of its `PodScheduled`; its
/// `lastTransitionTime` stays when the status does not change, as `UpdatePodCondition` keeps it.
fn set_scheduled_condition(object: &mut Value, mut condition: Value) {
    let previous = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|list| list.iter().find(|c| c["type"] == "PodScheduled"));
    if let Some(previous) = previous.filter(|p| p["status"] == condition["status"]) {
        condition["lastTransitionTime"] = previous["lastTransitionTime"].clone();
    }
    let conditions = object["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    if let Some(list) = conditions.and_then(Value::as_array_mut) {
        list.retain(|c| c["type"] != "PodScheduled");
        list.insert(0, condition);
    } else {
        object["status"] = json!({"phase": "Pending", "conditions": [condition]});
    }
}

/// Binds the pod to the node, marking it `PodScheduled=True` as upstream's binding does.
fn bind(store: &Store, pod: &Value, node_name: &str) -> Result<bool, SchedulerError> {
    let bound = update_unbound(store, pod, |object| {
        object["spec"]["nodeName"] = json!(node_name);
        set_scheduled_condition(object, condition("True", None, None));
        true
    })?;
    if bound {
        tracing::info!(
            pod = meta::meta_str(pod, "name"),
            namespace = meta::meta_str(pod, "namespace"),
            node = node_name,
            "pod scheduled"
        );
    }
    Ok(bound)
}

/// Sets `PodScheduled=False`, reason `Unschedulable`, unless it already says `message`.
/// Recorded as the scheduler's update of the status subresource.
fn mark_unschedulable(store: &Store, pod: &Value, message: &str) -> Result<bool, SchedulerError> {
    update_unbound(store, pod, |object| {
        let current = object
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|list| list.iter().find(|c| c["type"] == "PodScheduled"));
        let same = current.is_some_and(|c| {
            c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == message
        });
        if same {
            return false;
        }
        let before = object.clone();
        set_scheduled_condition(
            object,
            condition("False", Some("Unschedulable"), Some(message)),
        );
        let scope = fieldmanager::Scope::status("v1");
        fieldmanager::record_update(Some(&before), object, "kube-scheduler", &scope);
        true
    })
}

/// The `Warning FailedScheduling` event from `default-scheduler`.
fn record_failed_scheduling(store: &Store, pod: &Value, message: &str, node_name: &str) {
    let ns = meta::meta_str(pod, "namespace").unwrap_or("default");
    let name = meta::meta_str(pod, "name").unwrap_or("");
    let now = jiff::Timestamp::now();
    let event_name = format!("{name}.{:x}", now.as_nanosecond());
    let time = meta::now();
    let mut object = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": event_name, "namespace": ns},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": name, "apiVersion": "v1",
                           "uid": meta::meta_str(pod, "uid"),
                           "resourceVersion": meta::meta_str(pod, "resourceVersion")},
        "reason": "FailedScheduling", "message": message, "type": "Warning",
        "action": "Scheduling",
        "source": {"component": SCHEDULER_NAME},
        "firstTimestamp": time, "lastTimestamp": time, "count": 1, "eventTime": null,
        "reportingComponent": SCHEDULER_NAME,
        "reportingInstance": format!("{SCHEDULER_NAME}-{node_name}"),
    });
    meta::stamp_create(&mut object);
    let scope = fieldmanager::Scope::main("v1", false);
    fieldmanager::record_create(&mut object, "kube-scheduler", &scope);
    let created =
        Key::namespaced("", "events", ns, &event_name).and_then(|key| store.create(&key, object));
    if let Err(err) = created {
        tracing::debug!(
            pod = name,
            "cannot record the FailedScheduling event: {err}"
        );
    }
}
