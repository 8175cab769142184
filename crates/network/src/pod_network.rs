//! [`PodNetwork`]: attaching pods to the pod network and detaching them.
//!
//! A pod has two attachments: `lo` through the `loopback` plugin (network `cni-loopback`), then
//! `eth0` through the pod network. Both are cached, and teardown undoes them in reverse order.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::OwnedMutexGuard;

use crate::attachment::Attachment;
use crate::cache::{CacheEntry, ResultCache};
use crate::conflist::{default_network, loopback_network, DefaultNetwork, NetworkList};
use crate::error::NetworkError;
use crate::exec::Executor;
use crate::result::CniResult;
use ipnet::IpNet;

use crate::types::{NetworkConfig, PodNetworkStatus, PodRef, PortMapping, POD_INTERFACE};
use crate::{host, leftovers, masquerade, netns};

/// The interface the loopback network configures.
const LOOPBACK_INTERFACE: &str = "lo";

/// Attaches pods to the pod network through CNI plugins. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    network: NetworkList,
    loopback: NetworkList,
    executor: Executor,
    cache: ResultCache,
    /// One lock per sandbox: the spec forbids parallel operations on one container.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The default network's bridge and pod CIDR, whose masquerade rules the node sets up
    /// (`None` for a network the user configured, which masquerades as it says).
    masquerade: Option<(String, IpNet)>,
    /// Whether the masquerade rules were checked by this process.
    masquerade_ready: tokio::sync::OnceCell<()>,
}

impl PodNetwork {
    /// Builds the pod network: the user's configuration when one is given, else the default
    /// `coracle` network. Fails naming the first plugin that cannot be found.
    pub fn new(config: NetworkConfig) -> Result<Self, NetworkError> {
        let ipam_dir = config.state_dir.join("ipam");
        let network = match &config.conflist {
            Some(path) => NetworkList::load(path)?,
            None => default_network(&DefaultNetwork {
                pod_cidr: config.pod_cidr,
                bridge: &config.bridge_name,
                ipam_dir: &ipam_dir,
            }),
        };
        let loopback = loopback_network();
        let executor = Executor {
            plugin_dirs: config.plugin_dirs,
            timeout: config.exec_timeout,
        };
        executor.require(loopback.plugin_types().chain(network.plugin_types()))?;

        tracing::debug!(network = network.name, "pod network configured");
        Ok(PodNetwork {
            inner: Arc::new(Inner {
                network,
                loopback,
                executor,
                cache: ResultCache::new(&config.state_dir),
                locks: Mutex::default(),
                masquerade: config
                    .conflist
                    .is_none()
                    .then(|| (config.bridge_name.clone(), config.pod_cidr)),
                masquerade_ready: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The name of the pod network (`coracle` unless the user supplied a configuration).
    pub fn network_name(&self) -> &str {
        &self.inner.network.name
    }

    /// Attaches a pod whose network namespace is `netns`: brings up `lo`, then adds `eth0` to the
    /// pod network with `port_mappings` as `hostPort`s. When the pod network fails, whatever was
    /// done is undone before the error is returned, so no address leaks.
    pub async fn setup(
        &self,
        pod: &PodRef,
        netns: &Path,
        port_mappings: &[PortMapping],
    ) -> Result<PodNetworkStatus, NetworkError> {
        check_sandbox_id(pod)?;
        check_namespace(pod, netns)?;
        let _guard = self.lock(&pod.sandbox_id).await;
        let inner = &self.inner;

        let capability_args = capability_args(port_mappings);
        let attached = async {
            inner.ensure_masquerade().await?;
            inner
                .attach(&inner.loopback, LOOPBACK_INTERFACE, pod, netns, &Map::new())
                .await?;
            let result = inner
                .attach(&inner.network, POD_INTERFACE, pod, netns, &capability_args)
                .await?;
            pod_status(&inner.network.name, pod, &result)
        };
        match attached.await {
            Ok(status) => {
                tracing::info!(pod = %pod, ip = ?status.ips.first(), "pod network set up");
                Ok(status)
            }
            Err(error) => {
                // The spec requires a DEL after a failed ADD; it releases a half-made attachment.
                if let Err(cleanup) = inner.detach_all(pod, Some(netns)).await {
                    tracing::warn!(pod = %pod, error = %cleanup, "cleanup after failed cni add");
                }
                Err(error)
            }
        }
    }

    /// Asks every plugin whether the pod's attachments are still as `ADD` left them.
    pub async fn check(&self, pod: &PodRef, netns: &Path) -> Result<(), NetworkError> {
        check_sandbox_id(pod)?;
        check_namespace(pod, netns)?;
        let _guard = self.lock(&pod.sandbox_id).await;
        let inner = &self.inner;

        inner
            .check(&inner.network, POD_INTERFACE, pod, netns)
            .await?;
        inner
            .check(&inner.loopback, LOOPBACK_INTERFACE, pod, netns)
            .await
    }

    /// Detaches a pod. Idempotent: it works after a restart of coracle (from the cache), when the
    /// namespace is already gone (`netns` absent or deleted), when the pod was never attached, and
    /// when called twice. Fails only when a plugin really fails to undo something; the cache is
    /// then kept so that a retry knows what to undo.
    pub async fn teardown(&self, pod: &PodRef, netns: Option<&Path>) -> Result<(), NetworkError> {
        check_sandbox_id(pod)?;
        let guard = self.lock(&pod.sandbox_id).await;

        let result = self.inner.detach_all(pod, netns).await;
        if result.is_ok() {
            tracing::info!(pod = %pod, "pod network torn down");
            drop(guard);
            self.inner
                .locks
                .lock()
                .expect("lock map poisoned")
                .remove(&pod.sandbox_id);
        }
        result
    }

    /// The node's primary address for `status.hostIP`: the address of the interface holding the
    /// default route, or 127.0.0.1 when there is no default route. Never `None` today; the
    /// `Option` leaves room for nodes where no address can be determined at all.
    pub fn host_ip(&self) -> Option<IpAddr> {
        Some(host::default_route_address().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)))
    }

    async fn lock(&self, sandbox_id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.inner.locks.lock().expect("lock map poisoned");
            locks.entry(sandbox_id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

impl Inner {
    /// `ADD` one attachment. The cache entry is written before the plugins run, so that a crash
    /// in the middle still leaves teardown the configuration and arguments to undo it with.
    async fn attach(
        &self,
        list: &NetworkList,
        ifname: &str,
        pod: &PodRef,
        netns: &Path,
        capability_args: &Map<String, Value>,
    ) -> Result<Value, NetworkError> {
        let args = pod.cni_args();
        let mut entry = CacheEntry::new(&pod.sandbox_id, ifname, &list.name, list.to_value());
        entry.cni_args = args.clone();
        entry.capability_args = capability_args.clone();
        entry.netns = Some(netns.to_owned());
        self.cache.write(&entry)?;

        let pod_name = pod.to_string();
        let attachment = Attachment {
            list,
            container_id: &pod.sandbox_id,
            ifname,
            netns: Some(netns),
            args: &args,
            capability_args,
            pod: &pod_name,
        };
        let result = attachment.add(&self.executor).await?;

        entry.result = Some(result.clone());
        self.cache.write(&entry)?;
        tracing::debug!(pod = %pod, network = list.name, ifname, "cni add done");
        Ok(result)
    }

    /// Sets up the node's masquerade rules of the default network, once per process.
    async fn ensure_masquerade(&self) -> Result<(), NetworkError> {
        let Some((bridge, cidr)) = &self.masquerade else {
            return Ok(());
        };
        self.masquerade_ready
            .get_or_try_init(|| masquerade::ensure(bridge, cidr))
            .await
            .map(drop)
    }

    /// `DEL` both attachments, the pod network first. Both are tried even if the first fails.
    async fn detach_all(&self, pod: &PodRef, netns: Option<&Path>) -> Result<(), NetworkError> {
        let network = self.detach(&self.network, POD_INTERFACE, pod, netns).await;
        // Only an attachment made with the plugin's own `ipMasq` (by an earlier coracle, or a
        // user's configuration) can leave masquerade rules behind.
        if let Ok(true) = network {
            leftovers::remove_masquerade_rules(&self.network.name, &pod.sandbox_id).await;
        }
        let network = network.map(drop);
        let loopback = self
            .detach(&self.loopback, LOOPBACK_INTERFACE, pod, netns)
            .await;
        network.and(loopback.map(drop))
    }

    /// `DEL` one attachment with what is known: the cached configuration, arguments and result
    /// when there is a cache entry, else the current configuration and no previous result.
    /// Returns whether that configuration had the bridge plugin masquerade (`ipMasq`).
    async fn detach(
        &self,
        current: &NetworkList,
        ifname: &str,
        pod: &PodRef,
        netns: Option<&Path>,
    ) -> Result<bool, NetworkError> {
        let cached = self.cache.read(&current.name, &pod.sandbox_id, ifname)?;
        let known = Known::from_cache(cached, current, pod);

        // A namespace that is gone is passed as empty, which plugins accept for DEL.
        let netns = netns
            .or(known.netns.as_deref())
            .filter(|path| netns::is_namespace(path));
        let pod_name = pod.to_string();
        let attachment = Attachment {
            list: &known.list,
            container_id: &pod.sandbox_id,
            ifname,
            netns,
            args: &known.args,
            capability_args: &known.capability_args,
            pod: &pod_name,
        };
        attachment
            .del(&self.executor, known.result.as_ref())
            .await?;

        self.cache.remove(&current.name, &pod.sandbox_id, ifname)?;
        tracing::debug!(pod = %pod, network = current.name, ifname, "cni del done");
        let ip_masq = known
            .list
            .plugins
            .iter()
            .any(|p| p.get("ipMasq").and_then(serde_json::Value::as_bool) == Some(true));
        Ok(ip_masq)
    }

    /// `CHECK` one attachment against its cached result.
    async fn check(
        &self,
        current: &NetworkList,
        ifname: &str,
        pod: &PodRef,
        netns: &Path,
    ) -> Result<(), NetworkError> {
        let not_set_up = || NetworkError::NotSetUp {
            network: current.name.clone(),
            pod: pod.to_string(),
        };
        let cached = self.cache.read(&current.name, &pod.sandbox_id, ifname)?;
        let cached = cached
            .filter(|entry| entry.result.is_some())
            .ok_or_else(not_set_up)?;
        let known = Known::from_cache(Some(cached), current, pod);
        let result = known.result.as_ref().ok_or_else(not_set_up)?;

        let pod_name = pod.to_string();
        let attachment = Attachment {
            list: &known.list,
            container_id: &pod.sandbox_id,
            ifname,
            netns: Some(netns),
            args: &known.args,
            capability_args: &known.capability_args,
            pod: &pod_name,
        };
        attachment.check(&self.executor, result).await
    }
}

/// What is known about an attachment: from its cache entry, or from the current configuration.
struct Known {
    list: NetworkList,
    args: Vec<(String, String)>,
    capability_args: Map<String, Value>,
    result: Option<Value>,
    netns: Option<std::path::PathBuf>,
}

impl Known {
    fn from_cache(cached: Option<CacheEntry>, current: &NetworkList, pod: &PodRef) -> Self {
        let Some(entry) = cached else {
            return Known {
                list: current.clone(),
                args: pod.cni_args(),
                capability_args: Map::new(),
                result: None,
                netns: None,
            };
        };
        // The configuration used for ADD is the one to undo; fall back to the current one if
        // the cached copy is damaged.
        let list = NetworkList::from_value(entry.config, Path::new("cni result cache"))
            .unwrap_or_else(|error| {
                tracing::warn!(pod = %pod, %error, "using the current network configuration");
                current.clone()
            });
        let args = if entry.cni_args.is_empty() {
            pod.cni_args()
        } else {
            entry.cni_args
        };
        Known {
            list,
            args,
            capability_args: entry.capability_args,
            result: entry.result,
            netns: entry.netns,
        }
    }
}

/// The capability arguments for a pod: `portMappings` when it has `hostPort`s.
fn capability_args(port_mappings: &[PortMapping]) -> Map<String, Value> {
    let mappings: Vec<Value> = port_mappings
        .iter()
        .filter(|m| m.host_port != 0)
        .map(PortMapping::to_cni)
        .collect();
    let mut args = Map::new();
    if !mappings.is_empty() {
        args.insert("portMappings".into(), Value::Array(mappings));
    }
    args
}

/// The pod's addresses from the final result of the pod network.
fn pod_status(
    network: &str,
    pod: &PodRef,
    result: &Value,
) -> Result<PodNetworkStatus, NetworkError> {
    let result = CniResult::parse(result).map_err(|e| NetworkError::InvalidResult {
        plugin: "(last in chain)".to_owned(),
        network: network.to_owned(),
        reason: e.to_string(),
    })?;
    let pod_ips = result.pod_ips();
    let Some(first) = pod_ips.first() else {
        return Err(NetworkError::NoPodIp {
            network: network.to_owned(),
            pod: pod.to_string(),
        });
    };
    Ok(PodNetworkStatus {
        gateway: first.gateway,
        ips: pod_ips.iter().map(|ip| ip.address.addr()).collect(),
        interface: POD_INTERFACE.to_owned(),
        result,
    })
}

fn check_sandbox_id(pod: &PodRef) -> Result<(), NetworkError> {
    if pod.has_valid_sandbox_id() {
        return Ok(());
    }
    Err(NetworkError::InvalidSandboxId {
        pod: pod.to_string(),
        id: pod.sandbox_id.clone(),
    })
}

fn check_namespace(pod: &PodRef, path: &Path) -> Result<(), NetworkError> {
    if netns::is_namespace(path) {
        return Ok(());
    }
    Err(NetworkError::NotANetns {
        pod: pod.to_string(),
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> PodRef {
        PodRef {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            sandbox_id: "s".into(),
        }
    }

    #[test]
    fn host_ports_of_zero_are_not_mapped() {
        let mappings = [
            PortMapping {
                host_port: 0,
                container_port: 80,
                protocol: "TCP".into(),
                host_ip: None,
            },
            PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "TCP".into(),
                host_ip: None,
            },
        ];

        let args = capability_args(&mappings);

        assert_eq!(
            args["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
        );
        assert!(capability_args(&mappings[..1]).is_empty());
    }

    #[test]
    fn status_takes_the_sandbox_address_and_its_gateway() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "coracle0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.88.0.7/16", "gateway": "10.88.0.1", "interface": 1}]
        });

        let status = pod_status("coracle", &pod(), &result).unwrap();

        assert_eq!(status.ips, ["10.88.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(status.gateway, Some("10.88.0.1".parse().unwrap()));
        assert_eq!(status.interface, "eth0");
    }

    #[test]
    fn a_result_without_pod_address_is_an_error_naming_the_pod() {
        let result = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "coracle0"}],
            "ips": [{"address": "10.88.0.1/16", "interface": 0}]});

        let error = pod_status("coracle", &pod(), &result).unwrap_err();

        assert_eq!(
            error.to_string(),
            "network \"coracle\" gave pod ns/p no ip address"
        );
    }
}
