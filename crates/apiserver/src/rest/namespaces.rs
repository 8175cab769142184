//! Namespaces: the four built-in ones, a `default` ServiceAccount in each, and deletion that
//! removes everything inside before the namespace itself goes.

use std::sync::Arc;
use std::time::Duration;

use coracle_store::{Key, ListOptions};
use serde_json::{json, Value};

use super::admission::Deletion;
use super::Request;
use crate::meta;
use crate::resources::{Resource, RESOURCES};
use crate::state::ApiState;
use crate::status_error::ApiError;

/// The namespaces every cluster has.
pub const BUILT_IN: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the built-in namespaces and their default ServiceAccounts if missing.
pub fn bootstrap(state: &ApiState) {
    for ns in BUILT_IN {
        let Ok(key) = Key::cluster("", "namespaces", ns) else {
            continue;
        };
        if matches!(state.store.get(&key), Ok(Some(_))) {
            ensure_default_service_account(state, ns);
            continue;
        }
        let mut object = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        meta::stamp_create(&mut object);
        let scope = crate::fieldmanager::Scope::main("v1", true);
        crate::fieldmanager::record_create(&mut object, "kube-apiserver", &scope);
        if let Err(err) = state.store.create(&key, object) {
            tracing::warn!("cannot create namespace {ns}: {err}");
        }
        ensure_default_service_account(state, ns);
    }
}

/// Creates the `default` ServiceAccount of `ns` unless it exists.
pub fn ensure_default_service_account(state: &ApiState, ns: &str) {
    let Ok(key) = Key::namespaced("", "serviceaccounts", ns, "default") else {
        return;
    };
    if matches!(state.store.get(&key), Ok(Some(_))) {
        return;
    }
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "default", "namespace": ns}});
    meta::stamp_create(&mut sa);
    if let Err(err) = state.store.create(&key, sa) {
        tracing::debug!("default service account in {ns}: {err}");
    }
}

/// Refuses writes into a namespace that does not exist or is being deleted.
pub fn check_writable(
    state: &ApiState,
    ns: &str,
    res: &Resource,
    name: &str,
) -> Result<(), ApiError> {
    let key = Key::cluster("", "namespaces", ns)
        .map_err(|e| ApiError::from_store(e, "namespaces", ns))?;
    match state.store.get(&key) {
        Ok(Some((_, object))) if object.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(ApiError::Forbidden(format!(
                "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.qualified()
            )))
        }
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::NotFound {
            resource: "namespaces".into(),
            name: ns.to_owned(),
        }),
        Err(e) => Err(ApiError::from_store(e, "namespaces", ns)),
    }
}

/// Deleting a namespace: mark it Terminating and empty it in the background.
pub fn delete(req: &Request, object: &Value) -> Result<Deletion, ApiError> {
    let name = meta::meta_str(object, "name").unwrap_or("").to_owned();
    if super::namespaces::BUILT_IN[..3].contains(&name.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "namespaces {name:?} is forbidden: this namespace may not be deleted"
        )));
    }
    let mut marked = object.clone();
    if object.pointer("/metadata/deletionTimestamp").is_none() {
        meta::metadata(&mut marked).insert("deletionTimestamp".into(), json!(meta::now()));
        meta::metadata(&mut marked).insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    marked["status"] = json!({"phase": "Terminating"});
    let state = req.state.clone();
    tokio::spawn(empty_namespace(state, name));
    Ok(Deletion::Pending(marked))
}

/// Deletes every object in `ns` (pods gracefully, through the kubelet), then the namespace.
async fn empty_namespace(state: Arc<ApiState>, ns: String) {
    tracing::info!(namespace = %ns, "deleting namespace contents");
    for _ in 0..600 {
        let mut remaining = 0;
        for res in RESOURCES.iter().filter(|r| r.namespaced) {
            let Ok(prefix) = state.prefix(res, Some(&ns)) else {
                continue;
            };
            let Ok(page) = state.store.list(&prefix, &ListOptions::default()) else {
                continue;
            };
            for object in page.items {
                remaining += 1;
                let name = meta::meta_str(&object, "name").unwrap_or("").to_owned();
                let Ok(key) = state.key(res, Some(&ns), &name) else {
                    continue;
                };
                let bound = object.pointer("/spec/nodeName").is_some();
                if res.plural == "pods" && bound {
                    if object.pointer("/metadata/deletionTimestamp").is_none() {
                        let _ = state
                            .store
                            .guaranteed_update::<coracle_store::StoreError, _>(&key, |cur| {
                                Ok(cur.map(|mut pod| {
                                    let grace = pod
                                        .pointer("/spec/terminationGracePeriodSeconds")
                                        .and_then(Value::as_i64)
                                        .unwrap_or(30);
                                    let m = meta::metadata(&mut pod);
                                    m.insert("deletionTimestamp".into(), json!(meta::now()));
                                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                                    pod
                                }))
                            });
                    }
                } else {
                    let _ = state.store.delete(&key, None);
                }
            }
        }
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Ok(key) = Key::cluster("", "namespaces", &ns) {
        let _ = state.store.delete(&key, None);
    }
    tracing::info!(namespace = %ns, "namespace deleted");
}
