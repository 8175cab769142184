//! How the kubelet reads the API objects a pod refers to (ConfigMaps and Secrets).
//!
//! Upstream's kubelet asks its configMap and secret managers, which watch the API server.
//! coracle has two sources: the manifest files given to `coracle run` and, later, the API
//! server's store. Both implement [`ObjectSource`]; [`StaticObjects`] is the in-memory one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;

/// Read access to the ConfigMaps and Secrets that pods reference by name.
///
/// `None` means "not found"; the caller turns that into upstream's `configmap "x" not found`
/// (or skips the reference when it is `optional`).
pub trait ObjectSource: Send + Sync {
    /// The ConfigMap `name` in `namespace`, if it exists.
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    /// The Secret `name` in `namespace`, if it exists.
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
}

/// A fixed set of objects held in memory, keyed by namespace and name.
///
/// Objects without a namespace are placed in `default`, as `kubectl apply` would.
/// A Secret's `stringData` is merged into `data` here (its entries win), because the API
/// server does that on write and the kubelet only ever sees `data`.
#[derive(Debug, Clone, Default)]
pub struct StaticObjects {
    config_maps: BTreeMap<(String, String), ConfigMap>,
    secrets: BTreeMap<(String, String), Secret>,
}

impl StaticObjects {
    /// Holds `config_maps` and `secrets`; a later object with the same name replaces an earlier.
    pub fn new(config_maps: Vec<ConfigMap>, secrets: Vec<Secret>) -> Self {
        let mut objects = StaticObjects::default();
        for config_map in config_maps {
            objects
                .config_maps
                .insert(key_of(&config_map.metadata), config_map);
        }
        for secret in secrets {
            objects
                .secrets
                .insert(key_of(&secret.metadata), merge_string_data(secret));
        }
        objects
    }
}

impl ObjectSource for StaticObjects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    (namespace, meta.name.clone().unwrap_or_default())
}

fn merge_string_data(mut secret: Secret) -> Secret {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (key, value) in string_data {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: namespace.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn objects_without_namespace_live_in_default() {
        let cm = ConfigMap {
            metadata: meta(None, "cfg"),
            ..Default::default()
        };
        let objects = StaticObjects::new(vec![cm], vec![]);
        assert!(objects.config_map("default", "cfg").is_some());
        assert!(objects.config_map("other", "cfg").is_none());
        assert!(objects.secret("default", "cfg").is_none());
    }

    #[test]
    fn secret_string_data_is_merged_into_data_and_wins() {
        let secret = Secret {
            metadata: meta(Some("ns"), "s"),
            data: Some(BTreeMap::from([
                ("a".to_owned(), ByteString(b"old".to_vec())),
                ("b".to_owned(), ByteString(b"kept".to_vec())),
            ])),
            string_data: Some(BTreeMap::from([("a".to_owned(), "new".to_owned())])),
            ..Default::default()
        };
        let objects = StaticObjects::new(vec![], vec![secret]);
        let secret = objects.secret("ns", "s").unwrap();
        let data = secret.data.unwrap();
        assert_eq!(data["a"].0, b"new");
        assert_eq!(data["b"].0, b"kept");
        assert!(secret.string_data.is_none());
    }
}
