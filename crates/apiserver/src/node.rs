//! The one node: its Node object (labels, capacity, allocatable, conditions, addresses, node
//! info) and the Lease heartbeat in `kube-node-lease`.
//!
//! Registration follows the kubelet's: the well-known labels are set on every start
//! (`updateDefaultLabels`), other labels (`kubectl label node`) are kept, and a condition's
//! `lastTransitionTime` moves only when its status does.
//!
//! # Caveats
//!
//! Allocatable equals capacity: there are no reserved resources or eviction thresholds
//! subtracted (upstream takes 100Mi of memory and 10% of the disk by default).

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
    /// Size of the file system holding the data directory, in bytes (`ephemeral-storage`).
    pub storage_bytes: u64,
}

/// The size of the file system holding `dir`, as the kubelet's cadvisor reports the node's
/// root file system (0 if it cannot be read).
pub fn file_system_bytes(dir: &std::path::Path) -> u64 {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(fs) => fs.blocks().saturating_mul(fs.fragment_size()),
        Err(err) => {
            tracing::warn!(dir = %dir.display(), "cannot measure the file system: {err}");
            0
        }
    }
}

fn architecture() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// The labels the kubelet sets on its node: host name, OS and architecture (also under the
/// deprecated `beta.` keys), and coracle's control-plane role.
fn default_labels(name: &str) -> Value {
    json!({
        "beta.kubernetes.io/arch": architecture(),
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": architecture(),
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node-role.kubernetes.io/control-plane": "",
    })
}

/// `new` conditions with the `lastTransitionTime` of `old` ones whose status is the same.
fn keep_transition_times(new: &mut Value, old: Option<&Value>) {
    let (Some(new), Some(old)) = (new.as_array_mut(), old.and_then(Value::as_array)) else {
        return;
    };
    for condition in new {
        let before = old.iter().find(|o| o["type"] == condition["type"]);
        if let Some(before) = before.filter(|o| o["status"] == condition["status"]) {
            condition["lastTransitionTime"] = before["lastTransitionTime"].clone();
        }
    }
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
        "ephemeral-storage": facts.storage_bytes.to_string(),
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
            "operatingSystem": "linux", "architecture": architecture(),
        },
    });
    let name = facts.name.clone();
    store.guaranteed_update::<StoreError, _>(&key, move |current| {
        // The kubelet registers its node, then updates its status subresource.
        let mut node = current.unwrap_or_else(|| {
            let mut n = json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": default_labels(&name)},
                "spec": {}});
            meta::stamp_create(&mut n);
            fieldmanager::record_create(&mut n, "kubelet", &fieldmanager::Scope::main("v1", true));
            n
        });
        let labels = meta::metadata(&mut node)
            .entry("labels")
            .or_insert_with(|| json!({}));
        let missing = default_labels(&name)
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| labels.get(k) != Some(v));
        if missing {
            // The kubelet's own update of its labels, recorded as such.
            let before = node.clone();
            let labels = meta::metadata(&mut node)
                .entry("labels")
                .or_insert_with(|| json!({}));
            for (k, v) in default_labels(&name).as_object().into_iter().flatten() {
                labels[k] = v.clone();
            }
            let scope = fieldmanager::Scope::main("v1", true);
            fieldmanager::record_update(Some(&before), &mut node, "kubelet", &scope);
        }
        let mut status = status;
        keep_transition_times(
            &mut status["conditions"],
            node.pointer("/status/conditions"),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let old = json!([
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "DiskPressure", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"},
        ]);
        let mut new = json!([
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-06-01T00:00:00Z"},
            {"type": "DiskPressure", "status": "False", "lastTransitionTime": "2025-06-01T00:00:00Z"},
        ]);
        keep_transition_times(&mut new, Some(&old));
        assert_eq!(new[0]["lastTransitionTime"], "2025-01-01T00:00:00Z");
        assert_eq!(new[1]["lastTransitionTime"], "2025-06-01T00:00:00Z");
    }

    #[test]
    fn a_registered_node_keeps_its_own_labels_and_regains_the_kubelet_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let facts = NodeFacts {
            name: "n1".into(),
            host_ip: "10.0.0.1".into(),
            cpus: 2,
            memory_bytes: 1 << 30,
            storage_bytes: 1 << 33,
        };
        register(&store, &facts).unwrap();
        let key = Key::cluster("", "nodes", "n1").unwrap();
        let (rev, mut node) = store.get(&key).unwrap().unwrap();
        let first = node["status"]["conditions"][3]["lastTransitionTime"].clone();
        node["metadata"]["labels"] = json!({"disk": "ssd"});
        store.update(&key, node, Some(rev)).unwrap();

        std::thread::sleep(std::time::Duration::from_millis(1100));
        register(&store, &facts).unwrap();
        let (_, node) = store.get(&key).unwrap().unwrap();
        let labels = &node["metadata"]["labels"];
        assert_eq!(labels["disk"], "ssd");
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["beta.kubernetes.io/os"], "linux");
        assert_eq!(
            node["status"]["capacity"]["ephemeral-storage"],
            "8589934592"
        );
        assert_eq!(node["status"]["conditions"][3]["lastTransitionTime"], first);
    }
}
