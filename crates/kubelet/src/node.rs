//! What every pod worker shares: the node's runtime, image store, network and configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coracle_image::{ImageStore, RegistryConfig};
use coracle_network::PodNetwork;
use coracle_runtime::ContainerRuntime;

use crate::backoff::BackoffPolicy;
use crate::env::NodeInfo;
use crate::events::PodObserver;
use crate::objects::ObjectSource;

/// How the kubelet is set up.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// coracle's data directory (`/var/lib/coracle`).
    pub data_dir: PathBuf,
    /// Runtime state that does not survive a reboot (`/run/coracle`).
    pub run_dir: PathBuf,
    /// The node's name, for `spec.nodeName` and the `Scheduled` event.
    pub node_name: String,
    /// Crash-loop and image-pull back-off.
    pub backoff: BackoffPolicy,
    /// Registry mirrors and credentials for pulls.
    pub registries: RegistryConfig,
}

impl KubeletConfig {
    /// Where pod state lives: `DATA/pods`.
    pub fn pods_dir(&self) -> PathBuf {
        self.data_dir.join("pods")
    }

    /// The directory of the pod with `uid`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }
}

/// The node: shared by all pod workers.
pub struct Node {
    /// Configuration.
    pub config: KubeletConfig,
    /// The container runtime.
    pub runtime: ContainerRuntime,
    /// The image store.
    pub images: ImageStore,
    /// Pod networking; `None` when CNI plugins are missing (pods then get loopback only).
    pub network: Option<PodNetwork>,
    /// ConfigMaps and Secrets for volumes and env.
    pub objects: Arc<dyn ObjectSource>,
    /// Where statuses and events go.
    pub observer: Arc<dyn PodObserver>,
    /// Facts about the node for env and downward API.
    pub info: NodeInfo,
}

impl Node {
    /// The node's primary address, `status.hostIP`.
    pub fn host_ip(&self) -> &str {
        &self.info.host_ip
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }
}
