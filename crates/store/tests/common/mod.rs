//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use coracle_store::{Key, Prefix, Store, StoreConfig};
use serde_json::{json, Value};

/// A fresh store in its own temp dir (kept alive by the returned guard).
pub fn fresh_store() -> (tempfile::TempDir, Store) {
    fresh_store_with(StoreConfig::default())
}

pub fn fresh_store_with(config: StoreConfig) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_with(&dir.path().join("store.redb"), config).expect("open store");
    (dir, store)
}

pub fn pod_key(namespace: &str, name: &str) -> Key {
    Key::namespaced("", "pods", namespace, name).expect("valid key")
}

pub fn pods_in(namespace: &str) -> Prefix {
    Prefix::namespace("", "pods", namespace).expect("valid prefix")
}

pub fn pod(name: &str, generation: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"generation": generation},
    })
}

pub fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion is a string")
        .parse()
        .expect("resourceVersion is decimal")
}

pub fn name(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string()
}
