//! What every request handler shares.

use std::path::PathBuf;

use coracle_store::{Key, Prefix, Store};
use tokio::sync::watch;

use crate::resources::Resource;
use crate::status_error::ApiError;

/// The server's shared state.
pub struct ApiState {
    /// The object store.
    pub store: Store,
    /// The one node's name.
    pub node_name: String,
    /// coracle's data directory (pod state for logs lives under it).
    pub data_dir: PathBuf,
    /// The bearer token that authenticates.
    pub token: String,
    /// `host:port` the server answers on, for legacy discovery.
    pub server_address: String,
    /// Turns true when the server shuts down; watches end then.
    pub shutdown: watch::Receiver<bool>,
    /// The container runtime the kubelet uses, for exec (`None` without a kubelet).
    pub runtime: Option<coracle_runtime::ContainerRuntime>,
}

impl ApiState {
    /// The storage key of object `name` of `res` (in `namespace` when namespaced).
    pub fn key(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Key, ApiError> {
        let key = if res.namespaced {
            Key::namespaced(
                res.storage_group(),
                res.plural,
                namespace.unwrap_or(""),
                name,
            )
        } else {
            Key::cluster(res.storage_group(), res.plural, name)
        };
        key.map_err(|e| ApiError::from_store(e, &res.qualified(), name))
    }

    /// The stored pod `name` of `namespace`, or upstream's NotFound.
    pub fn pod(&self, namespace: &str, name: &str) -> Result<serde_json::Value, ApiError> {
        let key = Key::namespaced("", "pods", namespace, name)
            .map_err(|e| ApiError::from_store(e, "pods", name))?;
        let (_, pod) = self
            .store
            .get(&key)
            .map_err(|e| ApiError::from_store(e, "pods", name))?
            .ok_or_else(|| ApiError::NotFound {
                resource: "pods".into(),
                name: name.to_owned(),
            })?;
        Ok(pod)
    }

    /// The storage prefix of a collection: one namespace, or all of them.
    pub fn prefix(&self, res: &Resource, namespace: Option<&str>) -> Result<Prefix, ApiError> {
        let prefix = match namespace {
            Some(ns) if res.namespaced => Prefix::namespace(res.storage_group(), res.plural, ns),
            _ => Prefix::resource(res.storage_group(), res.plural),
        };
        prefix.map_err(|e| ApiError::from_store(e, &res.qualified(), ""))
    }
}

/// Resolves once the server is shutting down.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
