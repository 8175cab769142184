//! The garbage collector: what kube-controller-manager's does for `ownerReferences`.
//!
//! - Background: an object none of whose owners exists any more is deleted (through the API,
//!   so a pod is stopped gracefully by the kubelet first).
//! - Foreground: an owner deleted with `propagationPolicy: Foreground` carries the
//!   `foregroundDeletion` finalizer; its dependents are deleted, and once none with
//!   `blockOwnerDeletion: true` is left the finalizer goes and so does the owner.
//! - Orphan: an owner deleted with `propagationPolicy: Orphan` carries the `orphan` finalizer;
//!   its dependents lose their reference to it, then the finalizer goes.
//!
//! An owner counts as present when an object with its uid exists. As upstream, references to
//! kinds this server does not serve are never taken as absent: such dependents are left alone.
//!
//! # Caveats
//!
//! The collector scans the store whenever its revision moved (at most twice a second) rather
//! than keeping upstream's dependency graph; that is plenty for one node's objects. Dangling
//! references beside a live owner are left in place (upstream removes them).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use coracle_store::{ListOptions, Prefix, StoreError};
use serde_json::{json, Value};

use crate::query::Query;
use crate::resources::{Resource, RESOURCES};
use crate::state::{stopped, ApiState};
use crate::{meta, rest};

/// The finalizer of a foreground deletion.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion.
pub const ORPHAN: &str = "orphan";

/// The object to delete with the finalizer its `propagationPolicy` asks for: `orphan` for
/// Orphan, `foregroundDeletion` for Foreground (namespaces have deletion rules of their own).
pub fn with_propagation_finalizer(
    res: &Resource,
    mut object: Value,
    propagation: Option<&str>,
) -> Value {
    let finalizer = match propagation {
        Some("Orphan") => ORPHAN,
        Some("Foreground") => FOREGROUND,
        _ => return object,
    };
    if res.plural == "namespaces" || object.pointer("/metadata/deletionTimestamp").is_some() {
        return object;
    }
    let meta = meta::metadata(&mut object);
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        if !list.iter().any(|f| f == finalizer) {
            list.push(json!(finalizer));
        }
    }
    object
}

/// Runs until shutdown.
pub async fn run(state: Arc<ApiState>) {
    let mut shutdown = state.shutdown.clone();
    let mut seen = 0;
    loop {
        let revision = state.store.current_revision();
        if revision != seen {
            seen = revision;
            if let Err(err) = collect(&state).await {
                tracing::warn!("garbage collection: {err}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// A stored object and the resource it is of.
struct Stored {
    res: &'static Resource,
    object: Value,
}

impl Stored {
    fn uid(&self) -> &str {
        meta::meta_str(&self.object, "uid").unwrap_or("")
    }

    fn deleting(&self) -> bool {
        self.object.pointer("/metadata/deletionTimestamp").is_some()
    }

    fn has_finalizer(&self, name: &str) -> bool {
        finalizers(&self.object).iter().any(|f| f == name)
    }

    fn owner_refs(&self) -> Vec<&Value> {
        self.object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| refs.iter().collect())
            .unwrap_or_default()
    }
}

/// One pass over the store.
async fn collect(state: &Arc<ApiState>) -> Result<(), StoreError> {
    let page = state.store.list(&Prefix::all(), &ListOptions::default())?;
    let objects: Vec<Stored> = page
        .items
        .into_iter()
        .filter_map(|object| {
            let api_version = object.get("apiVersion")?.as_str()?;
            let kind = object.get("kind")?.as_str()?;
            let res = RESOURCES
                .iter()
                .find(|r| r.api_version() == api_version && r.kind == kind)?;
            Some(Stored { res, object })
        })
        .collect();
    let present: HashSet<&str> = objects.iter().map(Stored::uid).collect();
    let mut dependents: HashMap<&str, Vec<&Stored>> = HashMap::new();
    for dependent in &objects {
        for owner in dependent.owner_refs() {
            if let Some(uid) = owner.get("uid").and_then(Value::as_str) {
                dependents.entry(uid).or_default().push(dependent);
            }
        }
    }

    for object in &objects {
        // Owners being deleted with a propagation policy.
        if object.deleting() && object.has_finalizer(ORPHAN) {
            for dependent in dependents.get(object.uid()).into_iter().flatten() {
                drop_owner_ref(state, dependent, object.uid());
            }
            remove_finalizer(state, object, ORPHAN);
        }
        if object.deleting() && object.has_finalizer(FOREGROUND) {
            let waiting = dependents.get(object.uid()).into_iter().flatten();
            let mut blocked = false;
            for dependent in waiting {
                if !dependent.deleting() {
                    delete(state, dependent).await;
                }
                blocked |= dependent.owner_refs().iter().any(|r| {
                    r.get("uid").and_then(Value::as_str) == Some(object.uid())
                        && r.get("blockOwnerDeletion") == Some(&json!(true))
                });
            }
            if !blocked {
                remove_finalizer(state, object, FOREGROUND);
            }
        }

        // Dependents whose owners are all gone.
        let owners = object.owner_refs();
        if owners.is_empty() || object.deleting() {
            continue;
        }
        let all_gone = owners.iter().all(|r| {
            let served = RESOURCES.iter().any(|res| {
                Some(res.api_version().as_str()) == r.get("apiVersion").and_then(Value::as_str)
                    && Some(res.kind) == r.get("kind").and_then(Value::as_str)
            });
            let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
            served && !present.contains(uid)
        });
        if all_gone {
            delete(state, object).await;
        }
    }
    Ok(())
}

fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn key_of(state: &ApiState, stored: &Stored) -> Option<coracle_store::Key> {
    let name = meta::meta_str(&stored.object, "name")?;
    let ns = meta::meta_str(&stored.object, "namespace");
    state.key(stored.res, ns, name).ok()
}

/// Deletes a dependent through the API, in the background, as the collector's own client.
async fn delete(state: &Arc<ApiState>, stored: &Stored) {
    let Some(name) = meta::meta_str(&stored.object, "name") else {
        return;
    };
    let mut segs: Vec<&str> = Vec::new();
    if let Some(ns) = meta::meta_str(&stored.object, "namespace").filter(|_| stored.res.namespaced)
    {
        segs.extend(["namespaces", ns]);
    }
    segs.extend([stored.res.plural, name]);
    let Ok(target) = rest::parse_target(stored.res.group, stored.res.version, &segs) else {
        return;
    };
    // Only this very object: a newer one of the same name is not a dependent.
    let body = json!({"propagationPolicy": "Background",
                      "preconditions": {"uid": stored.uid()}});
    let request = rest::Request {
        state: state.clone(),
        method: Method::DELETE,
        target,
        query: Query::default(),
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_string()),
    };
    match request.handle().await {
        Ok(_) => tracing::info!(
            resource = stored.res.plural,
            name,
            "garbage collector deleted an object whose owners are gone"
        ),
        Err(err) => tracing::debug!(resource = stored.res.plural, name, "gc delete: {err}"),
    }
}

/// Removes the reference to `owner_uid` from `dependent`.
fn drop_owner_ref(state: &ApiState, dependent: &Stored, owner_uid: &str) {
    let Some(key) = key_of(state, dependent) else {
        return;
    };
    let uid = dependent.uid().to_owned();
    let _ = state
        .store
        .guaranteed_update::<StoreError, _>(&key, |current| {
            Ok(current.and_then(|mut object| {
                if meta::meta_str(&object, "uid") != Some(uid.as_str()) {
                    return None;
                }
                let refs = object
                    .pointer_mut("/metadata/ownerReferences")?
                    .as_array_mut()?;
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
                if refs.is_empty() {
                    meta::metadata(&mut object).remove("ownerReferences");
                }
                Some(object)
            }))
        });
}

/// Removes `finalizer` from `owner`; one being deleted whose last finalizer that was goes
/// away (pods: once the kubelet has stopped them, which it sees from this very update).
fn remove_finalizer(state: &ApiState, owner: &Stored, finalizer: &str) {
    let Some(key) = key_of(state, owner) else {
        return;
    };
    let uid = owner.uid().to_owned();
    let updated = state
        .store
        .guaranteed_update::<StoreError, _>(&key, |current| {
            Ok(current.and_then(|mut object| {
                if meta::meta_str(&object, "uid") != Some(uid.as_str()) {
                    return None;
                }
                let list = object.pointer_mut("/metadata/finalizers")?.as_array_mut()?;
                list.retain(|f| f != finalizer);
                if list.is_empty() {
                    meta::metadata(&mut object).remove("finalizers");
                }
                Some(object)
            }))
        });
    let finished = matches!(&updated, Ok(Some((_, object))) if finalizers(object).is_empty());
    if finished && crate::rest::admission::deletes_when_finalized(owner.res) {
        let _ = state.store.delete(&key, None);
    }
}
