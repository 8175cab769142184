//! The kubelet: admits pods, runs one worker per pod, and re-adopts pods after a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use coracle_image::ImageStore;
use coracle_network::{NetworkConfig, PodNetwork};
use coracle_runtime::ContainerRuntime;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::env::NodeInfo;
use crate::events::PodObserver;
use crate::node::{KubeletConfig, Node};
use crate::objects::ObjectSource;
use crate::state::PodState;
use crate::worker::{Message, Worker};

/// Errors starting the kubelet or admitting a pod.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The image store could not be opened.
    #[error("image store: {0}")]
    Images(#[from] coracle_image::ImageError),
    /// The container runtime could not be set up.
    #[error("container runtime: {0}")]
    Runtime(#[from] coracle_runtime::RuntimeError),
    /// Pod state could not be written.
    #[error("{0}")]
    State(#[from] crate::state::StateError),
    /// The pod has no name.
    #[error("pod has no metadata.name")]
    Unnamed,
}

struct Handle {
    tx: mpsc::Sender<Message>,
    task: JoinHandle<()>,
    namespace: String,
    name: String,
}

/// The pod engine of one node.
pub struct Kubelet {
    node: Arc<Node>,
    pods: Mutex<HashMap<String, Handle>>,
}

impl Kubelet {
    /// Sets up the node: runtime, image store, pod network.
    ///
    /// Pod networking needs the CNI plugins (Debian's `containernetworking-plugins`); without
    /// them pods get a network namespace with loopback only, and the user is told so.
    pub fn new(
        config: KubeletConfig,
        network: Option<NetworkConfig>,
        objects: Arc<dyn ObjectSource>,
        observer: Arc<dyn PodObserver>,
    ) -> Result<Kubelet, KubeletError> {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        Kubelet::with_shim(config, network, objects, observer, exe)
    }

    /// As [`Kubelet::new`], with containers driven by `shim_exe shim …` instead of the
    /// running executable: for programs (such as tests) that are not the `coracle` binary.
    pub fn with_shim(
        config: KubeletConfig,
        network: Option<NetworkConfig>,
        objects: Arc<dyn ObjectSource>,
        observer: Arc<dyn PodObserver>,
        shim_exe: PathBuf,
    ) -> Result<Kubelet, KubeletError> {
        // Image names are checked with the reference grammar's regex, which takes tens of
        // milliseconds to compile on first use. Compile it now on a thread of its own, while
        // the first pod's sandbox and network are set up, rather than on the path to its
        // first container.
        std::thread::spawn(|| coracle_image::normalize_reference("busybox").is_ok());
        let runtime = ContainerRuntime::new(&config.data_dir, &config.run_dir, shim_exe);
        let images = ImageStore::open(&config.data_dir)?;
        let network = match network.map(PodNetwork::new) {
            Some(Ok(net)) => Some(net),
            Some(Err(err)) => {
                tracing::warn!("pod network unavailable, pods get loopback only: {err}");
                None
            }
            None => None,
        };
        let host_ip = network
            .as_ref()
            .and_then(|n| n.host_ip())
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        let info = NodeInfo {
            node_name: config.node_name.clone(),
            host_ip,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_bytes: mem_total(),
        };
        let node = Node {
            config,
            runtime,
            images,
            network,
            objects,
            observer,
            info,
        };
        Ok(Kubelet {
            node: Arc::new(node),
            pods: Mutex::new(HashMap::new()),
        })
    }

    /// The node the pods run on.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Pods left on disk by an earlier coracle process.
    pub fn stored_pods(&self) -> Vec<PodState> {
        let Ok(entries) = std::fs::read_dir(self.node.config.pods_dir()) else {
            return Vec::new();
        };
        let mut pods = Vec::new();
        for entry in entries.flatten() {
            match PodState::load(&entry.path()) {
                Ok(state) => pods.push(state),
                Err(err) => tracing::warn!("skipping pod directory: {err}"),
            }
        }
        pods
    }

    /// Admits a new pod: gives it a uid and binds it to this node, then runs it.
    pub fn admit(&self, mut pod: Pod) -> Result<String, KubeletError> {
        if pod.metadata.name.is_none() {
            return Err(KubeletError::Unnamed);
        }
        let uid = pod.metadata.uid.get_or_insert_with(new_uid).clone();
        pod.metadata
            .namespace
            .get_or_insert_with(|| "default".into());
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some(self.node.config.node_name.clone());
        }
        let state = PodState::new(pod);
        state.save(&self.node.config.pod_dir(&uid))?;
        self.spawn(state);
        Ok(uid)
    }

    /// Runs a pod found on disk again: its containers are re-adopted, nothing is re-run that
    /// already succeeded.
    pub fn resume(&self, state: PodState) {
        tracing::info!(pod = state.pod.metadata.name.as_deref(), "re-adopting pod");
        self.spawn(state);
    }

    fn spawn(&self, state: PodState) {
        let uid = state.uid().to_string();
        let namespace = state.pod.metadata.namespace.clone().unwrap_or_default();
        let name = state.pod.metadata.name.clone().unwrap_or_default();
        let (tx, rx) = mpsc::channel(64);
        let worker = Worker::new(self.node.clone(), state, tx.clone(), rx);
        let span = tracing::info_span!("pod", pod = %name);
        let task = tokio::spawn(tracing::Instrument::instrument(worker.run(), span));
        let handle = Handle {
            tx,
            task,
            namespace,
            name,
        };
        self.pods.lock().expect("pod map lock").insert(uid, handle);
    }

    /// The uid of the running pod `namespace/name`.
    pub fn find(&self, namespace: &str, name: &str) -> Option<String> {
        let pods = self.pods.lock().expect("pod map lock");
        pods.iter()
            .find(|(_, h)| h.namespace == namespace && h.name == name)
            .map(|(uid, _)| uid.clone())
    }

    /// Asks the pod to be deleted with `grace` seconds (the pod's own when `None`).
    pub async fn delete(&self, uid: &str, grace: Option<i64>) {
        let tx = self
            .pods
            .lock()
            .expect("pod map lock")
            .get(uid)
            .map(|h| h.tx.clone());
        if let Some(tx) = tx {
            let _ = tx.send(Message::Delete(grace)).await;
        }
    }

    /// Waits until the pod's worker has removed it.
    pub async fn wait_removed(&self, uid: &str) {
        let task = self
            .pods
            .lock()
            .expect("pod map lock")
            .remove(uid)
            .map(|h| h.task);
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Uids of the pods this kubelet runs.
    pub fn pod_uids(&self) -> Vec<String> {
        self.pods
            .lock()
            .expect("pod map lock")
            .keys()
            .cloned()
            .collect()
    }
}

/// A random RFC 4122 version 4 uid, as the API server assigns.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .map_or(0, |kb| kb * 1024)
}
