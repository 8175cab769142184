//! The one node: its Node object (capacity, allocatable, conditions, addresses, node info)
//! and the Lease heartbeat in `kube-node-lease`.

use crate::state::stopped;
use std::time::Duration;

use coracle_store::{Key, Store, StoreError};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::fieldmanager;
use crate::meta;

/// What the Node object reports.
pub struct NodeFacts {
    /// The node's name.
    pub name: String,
    /// The host address pods see.
    pub host_ip: String,
    /// CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Creates or refreshes the Node object.
pub fn register(store: &Store, facts: &NodeFacts) -> Result<(), StoreError> {
    let key = Key::cluster("", "nodes", &facts.name)?;
    let now = meta::now();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "lastHeartbeatTime": now,
               "lastTransitionTime": now, "reason": reason, "message": message})
    };
    let resources = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_bytes / 1024),
        "pods": "110",
        "ephemeral-storage": "0",
    });
    let status = json!({
        "capacity": resources, "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": facts.host_ip}, {"type": "Hostname", "address": facts.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": std::fs::read_to_string("/etc/machine-id").unwrap_or_default().trim(),
            "systemUUID": "", "bootID": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim(),
            "kernelVersion": kernel(), "osImage": os_image(),
            "containerRuntimeVersion": format!("coracle://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": crate::GIT_VERSION, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" },
        },
    });
    let name = facts.name.clone();
    store.guaranteed_update::<StoreError, _>(&key, move |current| {
        // The kubelet registers its node, then updates its status subresource.
        let mut node = current.unwrap_or_else(|| {
            let mut n = json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": ""}},
                "spec": {}});
            meta::stamp_create(&mut n);
            fieldmanager::record_create(&mut n, "kubelet", &fieldmanager::Scope::main("v1", true));
            n
        });
        let before = node.clone();
        node["status"] = status;
        let scope = fieldmanager::Scope::status("v1");
        fieldmanager::record_update(Some(&before), &mut node, "kubelet", &scope);
        Ok(Some(node))
    })?;
    Ok(())
}

/// Renews the node's Lease every 10 seconds until `shutdown`.
pub async fn heartbeat(store: Store, name: String, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(err) = renew_lease(&store, &name) {
            tracing::warn!("cannot renew the node lease: {err}");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

fn renew_lease(store: &Store, name: &str) -> Result<(), StoreError> {
    let key = Key::namespaced("coordination.k8s.io", "leases", "kube-node-lease", name)?;
    let now = meta::now_micro();
    let name = name.to_owned();
    store.guaranteed_update::<StoreError, _>(&key, move |current| {
        let existed = current.is_some();
        let mut lease: Value = current.unwrap_or_else(|| {
            let mut l = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}});
            meta::stamp_create(&mut l);
            l
        });
        // Recorded as the kubelet's update (its create, the first time).
        let before = existed.then(|| lease.clone());
        lease["spec"]["renewTime"] = json!(now);
        let scope = fieldmanager::Scope::main("coordination.k8s.io/v1", false);
        fieldmanager::record_update(before.as_ref(), &mut lease, "kubelet", &scope);
        Ok(Some(lease))
    })?;
    Ok(())
}
