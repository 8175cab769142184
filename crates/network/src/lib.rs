//! Pod networking for coracle through CNI plugins.
//!
//! coracle does not link a CNI library: it executes the standard plugins (Debian's
//! `containernetworking-plugins`, installed in `/usr/lib/cni`) exactly as the CNI 1.0.0
//! specification describes, the way the kubelet's container runtime does through libcni.
//!
//! # Usage
//!
//! ```no_run
//! # async fn example() -> Result<(), coracle_network::NetworkError> {
//! use coracle_network::{NetworkConfig, PodNetwork, PodRef, PortMapping};
//! use std::path::Path;
//!
//! let network = PodNetwork::new(NetworkConfig::new("/var/lib/coracle/network"))?;
//! let pod = PodRef {
//!     namespace: "default".into(),
//!     name: "web".into(),
//!     uid: "6b1c…".into(),
//!     sandbox_id: "3f9a0c".into(),
//! };
//! let ports = [PortMapping {
//!     host_port: 8080,
//!     container_port: 80,
//!     protocol: "tcp".into(),
//!     host_ip: None,
//! }];
//!
//! let status = network.setup(&pod, Path::new("/run/netns/3f9a0c"), &ports).await?;
//! println!("pod ip {}", status.ips[0]);
//! network.check(&pod, Path::new("/run/netns/3f9a0c")).await?;
//! network.teardown(&pod, None).await?; // also works after a restart, and twice
//! # Ok(())
//! # }
//! ```
//!
//! - [`PodNetwork::new`] builds the network and checks that every plugin it needs exists; the
//!   error names the missing plugin and the Debian package.
//! - [`PodNetwork::setup`] runs `ADD`: the `loopback` plugin brings up `lo`, then the pod network
//!   creates `eth0`. It returns the pod's addresses (IPv4 first) and gateway.
//! - [`PodNetwork::check`] runs `CHECK` against the cached result.
//! - [`PodNetwork::teardown`] runs `DEL`; it is idempotent and needs only the pod and the state
//!   directory.
//! - [`PodNetwork::host_ip`] gives the node address for `status.hostIP`.
//!
//! The caller must create the pod's network namespace before `setup` and delete it after
//! `teardown`. Operations on different pods may run concurrently; operations on one pod are
//! serialized here, as the specification requires.
//!
//! # The default network
//!
//! Without a user configuration, pods join the network `coracle`: the `bridge` plugin puts
//! every pod on the Linux bridge `coracle0`, which is the pods' gateway (`isGateway`), with
//! outgoing traffic masqueraded behind the node's address by one chain of the node's own
//! (`CORACLE-MASQ-coracle0`, see [`masquerade`]) instead of the plugin's per-pod `ipMasq`,
//! and hairpin mode on;
//! `host-local` hands out addresses from the pod CIDR (default `10.88.0.0/16`, see
//! [`NetworkConfig::pod_cidr`]) and keeps its allocations under the state directory, not in
//! `/var/lib/cni`; `portmap` implements `hostPort`s with iptables DNAT rules. Enabling the
//! gateway makes the `bridge` plugin turn on `net.ipv4.ip_forward` on the node.
//!
//! A user configuration ([`NetworkConfig::conflist`]: a `.conflist` or `.conf` file, or a
//! directory like `/etc/cni/net.d` whose lexically first file is used) replaces the default
//! network. It may use any plugin in the plugin directories; `portMappings` are offered to the
//! plugins that declare that capability.
//!
//! # The protocol, as implemented
//!
//! Each plugin runs with `CNI_COMMAND`, `CNI_CONTAINERID` (the sandbox id), `CNI_NETNS`,
//! `CNI_IFNAME`, `CNI_PATH` (the plugin directories) and `CNI_ARGS`
//! (`IgnoreUnknown=1;K8S_POD_NAMESPACE=…;K8S_POD_NAME=…;K8S_POD_INFRA_CONTAINER_ID=…;K8S_POD_UID=…`),
//! and its configuration on stdin: the plugin's entry of the list plus the list's `name` and
//! `cniVersion`, a `runtimeConfig` with the capability arguments it declares, and `prevResult`.
//! `ADD` runs the chain in order, each plugin receiving the previous result; `DEL` runs it in
//! reverse and `CHECK` in order, both receiving the cached final result of `ADD`. A plugin that
//! fails is reported with its own `msg` and `details` and its name; one that runs longer than
//! [`NetworkConfig::exec_timeout`] is killed.
//!
//! Every attachment is cached as JSON in `<state_dir>/results/<network>-<sandbox>-<ifname>`, in
//! libcni's layout, before and after `ADD`, so `DEL` after a restart undoes exactly what was
//! done. A namespace that no longer exists is passed to `DEL` as empty, which the plugins treat
//! as "only release what is outside the pod".
//!
//! # Caveats
//!
//! - IPv4 is what coracle's default network is built and tested for. An IPv6 `pod_cidr` yields
//!   an IPv6-only network (with a `::/0` route) that is untested; dual-stack needs a user
//!   configuration with two ranges.
//! - `hostPort`s reached through 127.0.0.1 on the node need `net.ipv4.conf.all.route_localnet=1`,
//!   which coracle does not set; the node's other addresses work.
//! - Pods reach outside the node only if the host firewall forwards their traffic: the default
//!   network does not add the `firewall` plugin, so a host whose `FORWARD` policy is `DROP`
//!   (as Docker sets it) blocks them.
//! - The cache is found by the current network name; changing the network name between `ADD`
//!   and `DEL` leaves the old attachment to be undone with the current configuration.
//! - Only CNI results of version 0.3.0 and later are understood.

mod attachment;
mod cache;
mod conflist;
mod error;
mod exec;
mod host;
mod iptables;
mod leftovers;
pub mod masquerade;
mod netns;
mod pod_network;
mod result;
mod types;

pub use conflist::{CNI_VERSION, DEFAULT_NETWORK_NAME};
pub use error::{NetworkError, PluginCall};
pub use iptables::IptablesError;
pub use pod_network::PodNetwork;
pub use result::{CniResult, Dns, Interface, IpConfig, PluginError, Route};
pub use types::{
    NetworkConfig, PodNetworkStatus, PodRef, PortMapping, DEFAULT_BRIDGE, DEFAULT_EXEC_TIMEOUT,
    DEFAULT_PLUGIN_DIRS, DEFAULT_POD_CIDR, POD_INTERFACE,
};

/// Re-exported so callers can build a [`NetworkConfig::pod_cidr`] without depending on `ipnet`.
pub use ipnet::IpNet;
