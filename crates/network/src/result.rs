//! What plugins print: the CNI 1.0.0 success result and the error object (SPEC.md, section 5).
//!
//! Results travel through a chain as raw JSON (each plugin must pass `prevResult` on, including
//! fields this crate does not know), so the typed [`CniResult`] is only parsed from the final
//! result, to tell the kubelet the pod's addresses. Results of versions 0.3.x and 0.4.0 have the
//! same shape apart from an extra `version` field per IP, which is ignored; 0.1/0.2 results
//! (`ip4`/`ip6`) are not understood.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A successful `ADD` result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// The CNI version of the result, e.g. `1.0.0`.
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces created by the attachment, on the host and in the pod.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned by the attachment.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes created by the attachment.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings the network knows of.
    #[serde(default)]
    pub dns: Dns,
}

/// An interface in a result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// The hardware address, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The network namespace path for interfaces inside the pod; empty or absent on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

impl Interface {
    /// Whether the interface lives inside the pod's network namespace.
    pub fn in_sandbox(&self) -> bool {
        self.sandbox.as_deref().is_some_and(|s| !s.is_empty())
    }
}

/// An address in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length, e.g. `10.88.0.5/16`.
    pub address: IpNet,
    /// The gateway of the subnet, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`] of the interface holding the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination, e.g. `0.0.0.0/0`.
    pub dst: IpNet,
    /// The next hop; when absent the subnet's gateway is meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings in a result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains, in priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl CniResult {
    /// Parses a result printed by a plugin.
    pub fn parse(json: &serde_json::Value) -> Result<Self, serde_json::Error> {
        CniResult::deserialize(json)
    }

    /// The addresses that belong to the pod: those on an interface inside the sandbox, or those
    /// not tied to any interface. IPv4 addresses come first, otherwise the plugin's order is kept.
    pub fn pod_ips(&self) -> Vec<&IpConfig> {
        let mut ips: Vec<&IpConfig> = self
            .ips
            .iter()
            .filter(|ip| match ip.interface {
                Some(i) => self.interfaces.get(i).is_some_and(Interface::in_sandbox),
                None => true,
            })
            .collect();
        ips.sort_by_key(|ip| !ip.address.addr().is_ipv4());
        ips
    }
}

/// The error object a plugin prints on stdout when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginError {
    /// The CNI version of the error.
    #[serde(default)]
    pub cni_version: String,
    /// The error code: 1–99 are defined by the spec, 100 and above by the plugin.
    #[serde(default)]
    pub code: u32,
    /// A short message.
    #[serde(default)]
    pub msg: String,
    /// A longer description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl PluginError {
    /// Code 3: the container is unknown; the runtime needs no cleanup.
    pub const CONTAINER_UNKNOWN: u32 = 3;

    /// Parses the error object from a failed plugin's stdout. `None` when the output is not one
    /// (an object with at least a code or a message).
    pub fn parse(stdout: &[u8]) -> Option<Self> {
        let error: PluginError = serde_json::from_slice(stdout).ok()?;
        (error.code != 0 || !error.msg.is_empty()).then_some(error)
    }

    /// The name the spec gives a well-known code.
    fn code_name(&self) -> Option<&'static str> {
        Some(match self.code {
            1 => "incompatible cni version",
            2 => "unsupported field in network configuration",
            3 => "container unknown or does not exist",
            4 => "invalid environment variables",
            5 => "i/o failure",
            6 => "failed to decode content",
            7 => "invalid network configuration",
            11 => "try again later",
            _ => return None,
        })
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        match self.code_name() {
            Some(name) => write!(f, " (cni error {}: {name})", self.code),
            None => write!(f, " (cni error {})", self.code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bridge_result() -> serde_json::Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "coracle0", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/p"}
            ],
            "ips": [
                {"address": "fd00:88::5/64", "gateway": "fd00:88::1", "interface": 2},
                {"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2},
                {"address": "10.99.0.1/16", "interface": 0}
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.1.0.0/16", "gw": "10.88.0.254"}],
            "dns": {"nameservers": ["10.88.0.1"], "search": ["svc.local"]}
        })
    }

    #[test]
    fn parses_a_cni_1_0_0_result() {
        let result = CniResult::parse(&bridge_result()).unwrap();

        assert_eq!(result.cni_version, "1.0.0");
        assert_eq!(result.interfaces.len(), 3);
        assert_eq!(
            result.interfaces[2].sandbox.as_deref(),
            Some("/run/netns/p")
        );
        assert_eq!(
            result.ips[1].address,
            "10.88.0.5/16".parse::<IpNet>().unwrap()
        );
        assert_eq!(result.ips[1].gateway, Some("10.88.0.1".parse().unwrap()));
        assert_eq!(result.ips[1].interface, Some(2));
        assert_eq!(result.routes[0].gw, None);
        assert_eq!(result.routes[1].gw, Some("10.88.0.254".parse().unwrap()));
        assert_eq!(result.dns.nameservers, ["10.88.0.1"]);
    }

    #[test]
    fn pod_ips_are_sandbox_addresses_with_ipv4_first() {
        let result = CniResult::parse(&bridge_result()).unwrap();

        let ips: Vec<String> = result
            .pod_ips()
            .iter()
            .map(|ip| ip.address.to_string())
            .collect();

        assert_eq!(ips, ["10.88.0.5/16", "fd00:88::5/64"]);
    }

    #[test]
    fn older_results_with_a_version_per_ip_still_parse() {
        let old = json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "4", "address": "10.1.2.3/24"}]
        });

        let result = CniResult::parse(&old).unwrap();

        assert_eq!(result.pod_ips().len(), 1);
    }

    #[test]
    fn a_malformed_address_is_rejected() {
        let bad = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.300/24"}]});

        assert!(CniResult::parse(&bad).is_err());
    }

    #[test]
    fn plugin_error_object_is_parsed_and_displayed_with_its_message() {
        let out =
            br#"{"cniVersion":"1.0.0","code":7,"msg":"invalid range","details":"10.1.0.0/33"}"#;

        let error = PluginError::parse(out).unwrap();

        assert_eq!(error.code, 7);
        assert_eq!(
            error.to_string(),
            "invalid range: 10.1.0.0/33 (cni error 7: invalid network configuration)"
        );
    }

    #[test]
    fn plain_text_output_is_not_a_plugin_error() {
        assert_eq!(PluginError::parse(b"panic: runtime error"), None);
        assert_eq!(PluginError::parse(b"{}"), None);
    }
}
