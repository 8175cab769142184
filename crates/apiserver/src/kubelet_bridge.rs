//! The kubelet on the API: runs the pods bound to this node, reads ConfigMaps and Secrets
//! from the store, and writes pod status and events back.

use crate::state::stopped;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coracle_kubelet::objects::ObjectSource;
use coracle_kubelet::state::PodState;
use coracle_kubelet::{Kubelet, PodEvent, PodObserver};
use coracle_store::{Key, ListOptions, Prefix, Store, StoreError, WatchItem};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::fieldmanager;
use crate::meta;

/// ConfigMaps and Secrets, read from the store.
pub struct StoreObjects {
    /// The store.
    pub store: Store,
}

impl StoreObjects {
    fn read<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        ns: &str,
        name: &str,
    ) -> Option<T> {
        let key = Key::namespaced("", resource, ns, name).ok()?;
        let (_, value) = self.store.get(&key).ok()??;
        serde_json::from_value(value).ok()
    }
}

impl ObjectSource for StoreObjects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.read("configmaps", namespace, name)
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.read("secrets", namespace, name)
    }
}

/// What makes two events the same: pod uid, reason, message, fieldPath, source.
type EventKey = (String, String, String, String, String);

/// Writes pod statuses and events into the store.
pub struct StoreObserver {
    store: Store,
    node_name: String,
    /// Event name per (pod uid, reason, message, fieldPath, source): repeated events bump
    /// `count`, as the kubelet's event recorder aggregates them.
    recorded: Mutex<HashMap<EventKey, String>>,
}

impl StoreObserver {
    /// An observer writing to `store` for node `node_name`.
    pub fn new(store: Store, node_name: String) -> StoreObserver {
        StoreObserver {
            store,
            node_name,
            recorded: Mutex::new(HashMap::new()),
        }
    }
}

fn pod_key(pod: &Pod) -> Option<Key> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Key::namespaced("", "pods", ns, pod.metadata.name.as_deref()?).ok()
}

impl PodObserver for StoreObserver {
    fn status(&self, pod: &Pod) {
        let Some(key) = pod_key(pod) else { return };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let status = serde_json::to_value(&pod.status).unwrap_or(Value::Null);
        let result = self
            .store
            .guaranteed_update::<StoreError, _>(&key, |current| {
                Ok(current.and_then(|mut object| {
                    (meta::meta_str(&object, "uid") == Some(uid.as_str())).then(|| {
                        // Recorded as the kubelet's update of the status subresource.
                        let before = object.clone();
                        object["status"] = status.clone();
                        let scope = fieldmanager::Scope::status("v1");
                        fieldmanager::record_update(Some(&before), &mut object, "kubelet", &scope);
                        object
                    })
                }))
            });
        if let Err(err) = result {
            tracing::warn!(pod = ?pod.metadata.name, "cannot write pod status: {err}");
        }
    }

    fn event(&self, pod: &Pod, event: &PodEvent) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let field_path = event.field_path.clone().unwrap_or_default();
        let time = event.time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let dedup = (
            uid.clone(),
            event.reason.as_str().to_owned(),
            event.message.clone(),
            field_path.clone(),
            event.source.to_owned(),
        );
        let existing = self
            .recorded
            .lock()
            .expect("event map")
            .get(&dedup)
            .cloned();
        if let Some(event_name) = existing {
            if let Ok(key) = Key::namespaced("", "events", &ns, &event_name) {
                let bumped = self.store.guaranteed_update::<StoreError, _>(&key, |cur| {
                    Ok(cur.map(|mut e| {
                        let before = e.clone();
                        let count = e["count"].as_i64().unwrap_or(1);
                        e["count"] = json!(count + 1);
                        e["lastTimestamp"] = json!(time);
                        let scope = fieldmanager::Scope::main("v1", false);
                        fieldmanager::record_update(Some(&before), &mut e, "kubelet", &scope);
                        e
                    }))
                });
                if matches!(bumped, Ok(Some(_))) {
                    return;
                }
            }
        }
        let nanos = event.time.as_nanosecond() as u128;
        let event_name = format!("{name}.{nanos:x}");
        let mut involved = json!({"kind": "Pod", "namespace": ns, "name": name, "uid": uid,
                                  "apiVersion": "v1"});
        if let Some(rv) = &pod.metadata.resource_version {
            involved["resourceVersion"] = json!(rv);
        }
        if !field_path.is_empty() {
            involved["fieldPath"] = json!(field_path);
        }
        let mut object = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": involved,
            "reason": event.reason.as_str(),
            "message": event.message,
            "source": {"component": event.source, "host": self.node_name},
            "firstTimestamp": time, "lastTimestamp": time, "count": 1,
            "type": event.type_.as_str(), "eventTime": null,
            "reportingComponent": event.source, "reportingInstance": self.node_name,
        });
        meta::stamp_create(&mut object);
        fieldmanager::record_create(
            &mut object,
            "kubelet",
            &fieldmanager::Scope::main("v1", false),
        );
        let Ok(key) = Key::namespaced("", "events", &ns, &event_name) else {
            return;
        };
        match self.store.create(&key, object) {
            Ok(_) => {
                self.recorded
                    .lock()
                    .expect("event map")
                    .insert(dedup, event_name);
            }
            Err(err) => tracing::debug!("cannot record event: {err}"),
        }
    }
}

/// Runs the pods of `node_name` held in the store until `shutdown`.
pub async fn run(
    kubelet: Arc<Kubelet>,
    store: Store,
    node_name: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let deleting: Arc<Mutex<HashSet<String>>> = Arc::default();
    resume_stored(&kubelet, &store, &deleting);
    let prefix = Prefix::resource("", "pods").expect("pods prefix");
    loop {
        let page = match store.list(&prefix, &ListOptions::default()) {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!("kubelet cannot list pods: {err}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for pod in &page.items {
            reconcile(&kubelet, &store, &node_name, pod, &deleting).await;
        }
        let Ok(mut watch) = store.watch(&prefix, page.revision) else {
            continue;
        };
        loop {
            let item = tokio::select! {
                item = watch.next() => item,
                _ = stopped(&mut shutdown) => return,
            };
            match item {
                Ok(Some(WatchItem::Event(event))) => {
                    let pod = event.object.as_ref();
                    if event.event == coracle_store::EventType::Deleted {
                        let uid = meta::meta_str(pod, "uid").unwrap_or("").to_owned();
                        if kubelet.pod_uids().contains(&uid) {
                            stop(&kubelet, &store, uid, Some(0), &deleting);
                        }
                    } else {
                        reconcile(&kubelet, &store, &node_name, pod, &deleting).await;
                    }
                }
                Ok(Some(WatchItem::Bookmark { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// Re-adopts the pods an earlier process ran; those deleted meanwhile are stopped.
fn resume_stored(kubelet: &Arc<Kubelet>, store: &Store, deleting: &Arc<Mutex<HashSet<String>>>) {
    for state in kubelet.stored_pods() {
        let uid = state.uid().to_string();
        let live = pod_key(&state.pod)
            .and_then(|key| store.get(&key).ok().flatten())
            .filter(|(_, o)| meta::meta_str(o, "uid") == Some(uid.as_str()));
        let marked = live
            .as_ref()
            .is_some_and(|(_, o)| o.pointer("/metadata/deletionTimestamp").is_some());
        kubelet.resume(state_with_pod(state, live.as_ref().map(|(_, o)| o)));
        if live.is_none() || marked {
            stop(kubelet, store, uid, None, deleting);
        }
    }
}

fn state_with_pod(state: PodState, _live: Option<&Value>) -> PodState {
    state
}

async fn reconcile(
    kubelet: &Arc<Kubelet>,
    store: &Store,
    node_name: &str,
    pod: &Value,
    deleting: &Arc<Mutex<HashSet<String>>>,
) {
    if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node_name) {
        return;
    }
    let uid = meta::meta_str(pod, "uid").unwrap_or("").to_owned();
    let known = kubelet.pod_uids().contains(&uid);
    let marked = pod.pointer("/metadata/deletionTimestamp").is_some();
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    match (known, marked) {
        (false, false) => {
            let finished = matches!(
                pod.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
            if finished {
                return;
            }
            let typed: Pod = match serde_json::from_value(pod.clone()) {
                Ok(p) => p,
                Err(err) => {
                    tracing::warn!("cannot decode pod {uid}: {err}");
                    return;
                }
            };
            if let Err(err) = kubelet.admit(typed) {
                tracing::warn!("cannot admit pod {uid}: {err}");
            }
        }
        (true, true) => stop(kubelet, store, uid, grace, deleting),
        (false, true) => remove_object(store, pod, &uid),
        (true, false) => {}
    }
}

/// Stops a running pod once, then removes its API object.
fn stop(
    kubelet: &Arc<Kubelet>,
    store: &Store,
    uid: String,
    grace: Option<i64>,
    deleting: &Arc<Mutex<HashSet<String>>>,
) {
    if !deleting.lock().expect("deleting set").insert(uid.clone()) {
        return;
    }
    let (kubelet, store, deleting) = (kubelet.clone(), store.clone(), deleting.clone());
    tokio::spawn(async move {
        kubelet.delete(&uid, grace).await;
        kubelet.wait_removed(&uid).await;
        let prefix = Prefix::resource("", "pods").expect("pods prefix");
        if let Ok(page) = store.list(&prefix, &ListOptions::default()) {
            if let Some(pod) = page
                .items
                .iter()
                .find(|p| meta::meta_str(p, "uid") == Some(uid.as_str()))
            {
                remove_object(&store, pod, &uid);
            }
        }
        deleting.lock().expect("deleting set").remove(&uid);
        tracing::info!(uid = %uid, "pod removed");
    });
}

/// Deletes the pod object if it is still the one with `uid`.
fn remove_object(store: &Store, pod: &Value, uid: &str) {
    let ns = meta::meta_str(pod, "namespace").unwrap_or("default");
    let Some(name) = meta::meta_str(pod, "name") else {
        return;
    };
    let Ok(key) = Key::namespaced("", "pods", ns, name) else {
        return;
    };
    for _ in 0..5 {
        let Ok(Some((rev, current))) = store.get(&key) else {
            return;
        };
        if meta::meta_str(&current, "uid") != Some(uid) {
            return;
        }
        let finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if finalizers {
            return;
        }
        match store.delete(&key, Some(rev)) {
            Err(StoreError::Conflict { .. }) => continue,
            _ => return,
        }
    }
}
