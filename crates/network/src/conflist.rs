//! Network configuration lists (SPEC.md, section 1): loading, the default `coracle` network, and
//! deriving the configuration one plugin receives on stdin (SPEC.md, section 3).

use std::fs;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use crate::error::NetworkError;

/// The name of the network coracle generates when the user supplies none.
pub const DEFAULT_NETWORK_NAME: &str = "coracle";

/// The CNI version coracle speaks in the configurations it generates.
pub const CNI_VERSION: &str = "1.0.0";

/// The name of the network used to bring up `lo` with the `loopback` plugin.
pub(crate) const LOOPBACK_NETWORK_NAME: &str = "cni-loopback";

/// A parsed network configuration list: a name, a version and a chain of plugins.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetworkList {
    /// The network name, inserted into every plugin's configuration.
    pub name: String,
    /// The CNI version, inserted into every plugin's configuration.
    pub cni_version: String,
    /// Whether `CHECK` must be skipped for this network.
    pub disable_check: bool,
    /// The plugin configurations, in `ADD` order.
    pub plugins: Vec<Map<String, Value>>,
}

impl NetworkList {
    /// Parses a `.conflist`, or a single-plugin `.conf` (which becomes a one-plugin list).
    pub fn from_value(value: Value, path: &Path) -> Result<Self, NetworkError> {
        let invalid = |reason: &str| NetworkError::InvalidConfig {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let Value::Object(mut top) = value else {
            return Err(invalid("not a json object"));
        };

        let name = match top.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(invalid("missing \"name\"")),
        };
        let cni_version = match top.get("cniVersion") {
            Some(Value::String(v)) if !v.is_empty() => v.clone(),
            _ => return Err(invalid("missing \"cniVersion\"")),
        };
        let disable_check = top
            .get("disableCheck")
            .and_then(Value::as_bool)
            .unwrap_or(false);

        // A single plugin configuration (`.conf`) is a list of one.
        let plugins = match top.remove("plugins") {
            Some(Value::Array(plugins)) => plugins,
            Some(_) => return Err(invalid("\"plugins\" is not a list")),
            None if top.contains_key("type") => vec![Value::Object(top)],
            None => return Err(invalid("neither \"plugins\" nor \"type\"")),
        };
        if plugins.is_empty() {
            return Err(invalid("\"plugins\" is empty"));
        }
        let plugins = plugins
            .into_iter()
            .map(|plugin| match plugin {
                Value::Object(p) if p.get("type").and_then(Value::as_str).is_some() => Ok(p),
                _ => Err(invalid("a plugin has no \"type\"")),
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(NetworkList {
            name,
            cni_version,
            disable_check,
            plugins,
        })
    }

    /// Loads a configuration file, or the first configuration file of a directory in lexical
    /// order, as libcni and the kubelet do (extensions `.conflist`, `.conf`, `.json`).
    pub fn load(path: &Path) -> Result<Self, NetworkError> {
        let file = if path.is_dir() {
            first_config_file(path)?
        } else {
            path.to_owned()
        };
        let read_error = |source| NetworkError::ReadConfig {
            path: file.clone(),
            source,
        };
        let text = fs::read(&file).map_err(read_error)?;
        let value = serde_json::from_slice(&text).map_err(|e| NetworkError::InvalidConfig {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        Self::from_value(value, &file)
    }

    /// The list back as JSON, as cached next to a result.
    pub fn to_value(&self) -> Value {
        let mut top = Map::new();
        top.insert("cniVersion".into(), self.cni_version.clone().into());
        top.insert("name".into(), self.name.clone().into());
        if self.disable_check {
            top.insert("disableCheck".into(), true.into());
        }
        let plugins = self.plugins.iter().cloned().map(Value::Object).collect();
        top.insert("plugins".into(), Value::Array(plugins));
        Value::Object(top)
    }

    /// The `type` of every plugin, in order.
    pub fn plugin_types(&self) -> impl Iterator<Item = &str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
    }

    /// Whether this list's version knows `CHECK` and `prevResult` on `DEL` (0.4.0 and later).
    pub fn supports_check(&self) -> bool {
        version_at_least(&self.cni_version, (0, 4, 0))
    }

    /// The configuration plugin `index` receives on stdin: its own configuration with the list's
    /// `name` and `cniVersion` inserted, `capabilities` removed, a `runtimeConfig` holding the
    /// capability arguments it declares, and `prevResult` when there is one.
    pub fn plugin_request(
        &self,
        index: usize,
        capability_args: &Map<String, Value>,
        prev_result: Option<&Value>,
    ) -> Value {
        let mut conf = self.plugins[index].clone();
        conf.insert("cniVersion".into(), self.cni_version.clone().into());
        conf.insert("name".into(), self.name.clone().into());

        let capabilities = conf.remove("capabilities");
        let mut runtime_config = Map::new();
        if let Some(Value::Object(capabilities)) = capabilities {
            for (capability, enabled) in capabilities {
                let arg = capability_args.get(&capability);
                if let (Some(true), Some(arg)) = (enabled.as_bool(), arg) {
                    runtime_config.insert(capability, arg.clone());
                }
            }
        }
        if !runtime_config.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }

        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        Value::Object(conf)
    }
}

/// Settings of the default network.
#[derive(Debug, Clone)]
pub(crate) struct DefaultNetwork<'a> {
    /// The pod CIDR host-local allocates from.
    pub pod_cidr: IpNet,
    /// The Linux bridge all pods attach to.
    pub bridge: &'a str,
    /// Where host-local keeps its allocations.
    pub ipam_dir: &'a Path,
}

/// The network coracle uses when the user supplies none: every pod gets a veth pair on one
/// bridge, an address from the pod CIDR and a default route through the bridge, which is the
/// node's address on the pod network. Traffic leaving the node is masqueraded by the node's
/// own rules ([`crate::masquerade`]) rather than the plugin's per-pod `ipMasq`, as podman's
/// default network does, so pods reach the outside without routes elsewhere.
/// `hairpinMode` lets a pod reach itself through its own hostPort.
/// `portmap` follows for `hostPort`s.
pub(crate) fn default_network(settings: &DefaultNetwork<'_>) -> NetworkList {
    let default_route = match settings.pod_cidr {
        IpNet::V4(_) => "0.0.0.0/0",
        IpNet::V6(_) => "::/0",
    };
    let bridge = json!({
        "type": "bridge",
        "bridge": settings.bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": settings.pod_cidr.trunc().to_string()}]],
            "routes": [{"dst": default_route}],
            "dataDir": settings.ipam_dir,
        }
    });
    let portmap = json!({
        "type": "portmap",
        "capabilities": {"portMappings": true},
        "snat": true,
    });
    let plugins = [bridge, portmap]
        .into_iter()
        .filter_map(into_object)
        .collect();
    NetworkList {
        name: DEFAULT_NETWORK_NAME.to_owned(),
        cni_version: CNI_VERSION.to_owned(),
        disable_check: false,
        plugins,
    }
}

/// The network that brings up `lo` in the pod.
pub(crate) fn loopback_network() -> NetworkList {
    NetworkList {
        name: LOOPBACK_NETWORK_NAME.to_owned(),
        cni_version: CNI_VERSION.to_owned(),
        disable_check: false,
        plugins: into_object(json!({"type": "loopback"}))
            .into_iter()
            .collect(),
    }
}

fn into_object(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The lexically first configuration file of a directory.
fn first_config_file(dir: &Path) -> Result<PathBuf, NetworkError> {
    let read_error = |source| NetworkError::ReadConfig {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let is_config = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "conflist" | "conf" | "json"));
        if is_config && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files
        .into_iter()
        .next()
        .ok_or_else(|| NetworkError::NoConfig {
            dir: dir.to_owned(),
        })
}

/// Compares a `major.minor.patch` version string; unparsable parts count as 0.
fn version_at_least(version: &str, min: (u64, u64, u64)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let v = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    v >= min
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_list() -> NetworkList {
        default_network(&DefaultNetwork {
            pod_cidr: "10.88.0.0/16".parse().unwrap(),
            bridge: "coracle0",
            ipam_dir: Path::new("/var/lib/coracle/network/ipam"),
        })
    }

    #[test]
    fn default_network_is_bridge_then_portmap() {
        let list = default_list();

        assert_eq!(list.name, "coracle");
        assert_eq!(list.cni_version, "1.0.0");
        assert_eq!(
            list.plugin_types().collect::<Vec<_>>(),
            ["bridge", "portmap"]
        );
    }

    #[test]
    fn default_bridge_is_a_gateway_that_leaves_masquerading_to_the_node_with_host_local_in_the_data_dir(
    ) {
        let list = default_list();
        let bridge = Value::Object(list.plugins[0].clone());

        assert_eq!(bridge["bridge"], "coracle0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/16");
        assert_eq!(bridge["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(bridge["ipam"]["dataDir"], "/var/lib/coracle/network/ipam");
    }

    #[test]
    fn default_network_truncates_a_cidr_given_with_host_bits() {
        let list = default_network(&DefaultNetwork {
            pod_cidr: "10.250.3.7/24".parse().unwrap(),
            bridge: "b",
            ipam_dir: Path::new("/x"),
        });

        assert_eq!(
            list.plugins[0]["ipam"]["ranges"][0][0]["subnet"],
            "10.250.3.0/24"
        );
    }

    #[test]
    fn ipv6_pod_cidr_gets_an_ipv6_default_route() {
        let list = default_network(&DefaultNetwork {
            pod_cidr: "fd00:88::/64".parse().unwrap(),
            bridge: "b",
            ipam_dir: Path::new("/x"),
        });

        assert_eq!(list.plugins[0]["ipam"]["routes"][0]["dst"], "::/0");
    }

    #[test]
    fn plugin_request_inserts_name_version_and_prev_result() {
        let list = default_list();
        let prev = json!({"cniVersion": "1.0.0", "ips": []});

        let request = list.plugin_request(0, &Map::new(), Some(&prev));

        assert_eq!(request["name"], "coracle");
        assert_eq!(request["cniVersion"], "1.0.0");
        assert_eq!(request["prevResult"], prev);
        assert!(request.get("runtimeConfig").is_none());
    }

    #[test]
    fn runtime_config_holds_only_declared_capabilities() {
        let list = default_list();
        let mut args = Map::new();
        args.insert(
            "portMappings".into(),
            json!([{"hostPort": 8080, "containerPort": 80}]),
        );
        args.insert("bandwidth".into(), json!({"ingressRate": 1}));

        let bridge = list.plugin_request(0, &args, None);
        let portmap = list.plugin_request(1, &args, None);

        assert!(bridge.get("runtimeConfig").is_none());
        assert!(portmap.get("capabilities").is_none());
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": args["portMappings"]})
        );
    }

    #[test]
    fn a_single_plugin_conf_becomes_a_list_of_one() {
        let conf = json!({"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "b"});

        let list = NetworkList::from_value(conf, Path::new("x.conf")).unwrap();

        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.plugins[0]["bridge"], "b");
        assert!(list.supports_check());
    }

    #[test]
    fn a_conflist_without_name_is_rejected_naming_the_file() {
        let conf = json!({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]});

        let error = NetworkList::from_value(conf, Path::new("/etc/cni/net.d/x.conflist"));

        let message = error.unwrap_err().to_string();
        assert!(message.contains("/etc/cni/net.d/x.conflist"), "{message}");
        assert!(message.contains("name"), "{message}");
    }

    #[test]
    fn list_round_trips_through_json() {
        let list = default_list();

        let again = NetworkList::from_value(list.to_value(), Path::new("cache")).unwrap();

        assert_eq!(again, list);
    }

    #[test]
    fn a_directory_yields_its_lexically_first_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = |name: &str| json!({"cniVersion": "1.0.0", "name": name, "type": "bridge"});
        fs::write(dir.path().join("20-b.conf"), conf("b").to_string()).unwrap();
        fs::write(dir.path().join("10-a.conflist.bak"), "not json").unwrap();
        fs::write(dir.path().join("10-a.conf"), conf("a").to_string()).unwrap();

        let list = NetworkList::load(dir.path()).unwrap();

        assert_eq!(list.name, "a");
    }

    #[test]
    fn versions_before_0_4_0_do_not_support_check() {
        assert!(!version_at_least("0.3.1", (0, 4, 0)));
        assert!(version_at_least("0.4.0", (0, 4, 0)));
        assert!(version_at_least("1.0.0", (0, 4, 0)));
    }
}
