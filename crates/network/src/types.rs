//! The values the kubelet hands in and gets back: configuration, pod identity, port mappings and
//! the resulting pod network status.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::result::CniResult;

/// The pod CIDR used when none is configured, the same as podman's default network.
pub const DEFAULT_POD_CIDR: &str = "10.88.0.0/16";

/// The bridge of the default network.
pub const DEFAULT_BRIDGE: &str = "coracle0";

/// Where plugins are looked for by default: Debian's package first, then the upstream location.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// How long one plugin may run by default before it is killed.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// The interface name of the pod's network interface, as in Kubernetes.
pub const POD_INTERFACE: &str = "eth0";

/// How coracle networks pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The CIDR pods get addresses from in the default network.
    pub pod_cidr: IpNet,
    /// Directories searched for plugin binaries, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// Where coracle keeps network state: the result cache (`results/`) and host-local's address
    /// allocations (`ipam/`). Normally `<data dir>/network`.
    pub state_dir: PathBuf,
    /// A user-supplied configuration file (`.conflist`, `.conf`, `.json`) or a directory such as
    /// `/etc/cni/net.d` whose lexically first configuration file is used, instead of the default
    /// network. `pod_cidr` and `bridge_name` are then ignored.
    pub conflist: Option<PathBuf>,
    /// The bridge of the default network.
    pub bridge_name: String,
    /// How long one plugin may run before it is killed.
    pub exec_timeout: Duration,
}

impl NetworkConfig {
    /// The default network, keeping its state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        NetworkConfig {
            pod_cidr: DEFAULT_POD_CIDR
                .parse()
                .expect("the default pod cidr parses"),
            plugin_dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            state_dir: state_dir.into(),
            conflist: None,
            bridge_name: DEFAULT_BRIDGE.to_owned(),
            exec_timeout: DEFAULT_EXEC_TIMEOUT,
        }
    }
}

/// The pod being networked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// The sandbox id; it is the CNI container id, so it must be made of letters, digits, `_`,
    /// `.` and `-` and start with a letter or digit.
    pub sandbox_id: String,
}

impl PodRef {
    /// The `CNI_ARGS` the kubelet passes, led by `IgnoreUnknown=1` so that plugins which parse
    /// their arguments strictly (host-local) accept the Kubernetes keys.
    pub(crate) fn cni_args(&self) -> Vec<(String, String)> {
        [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.namespace.as_str()),
            ("K8S_POD_NAME", self.name.as_str()),
            ("K8S_POD_INFRA_CONTAINER_ID", self.sandbox_id.as_str()),
            ("K8S_POD_UID", self.uid.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Whether the sandbox id is a valid CNI container id.
    pub(crate) fn has_valid_sandbox_id(&self) -> bool {
        let mut chars = self.sandbox_id.chars();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(allowed)
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A `hostPort` of a container, for the `portMappings` capability of `portmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The port on the node. 0 means no mapping, as in a Pod spec.
    pub host_port: u16,
    /// The port in the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (any case; CNI wants lowercase).
    pub protocol: String,
    /// The node address to listen on; all addresses when absent or empty.
    pub host_ip: Option<String>,
}

impl PortMapping {
    /// The CNI convention's JSON for a port mapping.
    pub(crate) fn to_cni(&self) -> Value {
        let mut mapping = json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.to_ascii_lowercase(),
        });
        if let Some(host_ip) = self.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
            mapping["hostIP"] = host_ip.into();
        }
        mapping
    }
}

/// The pod's network after `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetworkStatus {
    /// The pod's addresses, IPv4 first (`status.podIPs`).
    pub ips: Vec<IpAddr>,
    /// The gateway of the first address' subnet, if the network has one.
    pub gateway: Option<IpAddr>,
    /// The pod's interface (`eth0`).
    pub interface: String,
    /// The full result of the network's last plugin.
    pub result: CniResult,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(sandbox_id: &str) -> PodRef {
        PodRef {
            namespace: "default".into(),
            name: "web".into(),
            uid: "1234-5678".into(),
            sandbox_id: sandbox_id.into(),
        }
    }

    #[test]
    fn cni_args_carry_the_kubernetes_keys_after_ignore_unknown() {
        let args = crate::exec::cni_args(&pod("abc123").cni_args());

        assert_eq!(
            args,
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
             K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=1234-5678"
        );
    }

    #[test]
    fn sandbox_ids_follow_the_cni_container_id_rule() {
        assert!(pod("abc-1.2_3").has_valid_sandbox_id());
        assert!(!pod("").has_valid_sandbox_id());
        assert!(!pod("-abc").has_valid_sandbox_id());
        assert!(!pod("a/b").has_valid_sandbox_id());
        assert!(!pod("a;b").has_valid_sandbox_id());
    }

    #[test]
    fn port_mappings_use_lowercase_protocols_and_omit_an_empty_host_ip() {
        let mapping = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "TCP".into(),
            host_ip: Some(String::new()),
        };

        assert_eq!(
            mapping.to_cni(),
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})
        );
    }

    #[test]
    fn a_port_mapping_host_ip_is_passed_as_host_ip() {
        let mapping = PortMapping {
            host_port: 53,
            container_port: 5353,
            protocol: "udp".into(),
            host_ip: Some("10.0.0.1".into()),
        };

        assert_eq!(mapping.to_cni()["hostIP"], "10.0.0.1");
    }
}
