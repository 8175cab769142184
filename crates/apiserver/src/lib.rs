//! coracle-apiserver: the Kubernetes API that the unmodified `kubectl` talks to.
//!
//! [`run`] starts everything `coracle server` is: the HTTPS listener ([`http`], [`tls`]),
//! the routes ([`router`]) with discovery ([`discovery`]), OpenAPI ([`openapi`]) and REST on
//! the store ([`rest`], [`watch`], [`patch`], [`table`], [`logs`]), the node ([`node`]), the
//! controllers ([`garbage_collector`], [`scheduler`]) and the kubelet running the pods the API
//! holds ([`kubelet_bridge`]).
//!
//! # Caveats
//!
//! Store calls are synchronous and made on the async workers (each is one short redb
//! transaction). Server-side apply tracks field ownership as upstream does ([`fieldmanager`]),
//! keying lists by the strategic merge keys rather than by upstream's schemas. exec and
//! port-forward are served over WebSocket and SPDY, without SPDY flow control ([`exec`],
//! [`portforward`]). Events are stored once, as `v1` Events, and `events.k8s.io/v1` is
//! converted from them ([`events`]); its updates are not checked for upstream's immutable
//! fields.

pub mod codec;
pub mod discovery;
pub mod events;
pub mod exec;
pub mod exec_spdy;
pub mod fieldmanager;
pub mod garbage_collector;
pub mod http;
pub mod kubelet_bridge;
pub mod logs;
pub mod meta;
pub mod node;
pub mod openapi;
pub mod patch;
pub mod portforward;
pub mod protobuf;
pub mod query;
pub mod resources;
pub mod rest;
pub mod router;
pub mod scheduler;
pub mod selectors;
pub mod spdy;
pub mod state;
pub mod status_error;
pub mod table;
pub mod tls;
pub mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use coracle_kubelet::{BackoffPolicy, Kubelet, KubeletConfig};
use coracle_store::{CompactionPolicy, Store};

use crate::state::ApiState;

/// The Kubernetes version served (the k8s-openapi types in use are v1_33).
pub const GIT_VERSION: &str = "v1.33.0";

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened.
    #[error("store")]
    Store(#[from] coracle_store::StoreError),
    /// The PKI could not be set up.
    #[error("tls")]
    Tls(#[from] tls::TlsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be created.
    #[error("cannot create {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The image registry configuration could not be read.
    #[error("registry configuration")]
    Registries(#[from] coracle_image::ImageError),
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// coracle's data directory.
    pub data_dir: PathBuf,
    /// Runtime state directory (`/run/coracle`).
    pub run_dir: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The `registries.yaml` file.
    pub registry_config: PathBuf,
    /// Whether to run the kubelet (off for API-only tests).
    pub kubelet: bool,
}

/// The node's name: the host name, lower-cased.
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "coracle".into())
}

/// Runs the server until `shutdown` completes, then stops gracefully. Containers keep
/// running; the next start re-adopts them.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store = Store::open(&config.data_dir.join("apiserver.redb"))?;
    let compactor = coracle_store::spawn_compactor(store.clone(), CompactionPolicy::default());

    let pki = tls::Pki::new(&config.data_dir);
    pki.ensure()?;
    let token = pki.token()?;
    let tls_config = pki.server_config()?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let node = node_name();
    let state = Arc::new(ApiState {
        store: store.clone(),
        node_name: node.clone(),
        data_dir: config.data_dir.clone(),
        token: token.clone(),
        server_address: addr.to_string(),
        shutdown: stop_rx.clone(),
        runtime: config.kubelet.then(|| {
            let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            coracle_runtime::ContainerRuntime::new(&config.data_dir, &config.run_dir, exe)
        }),
    });
    rest::namespaces::bootstrap(&state);

    let mut tasks = Vec::new();
    if config.kubelet {
        let kubelet_config = KubeletConfig {
            data_dir: config.data_dir.clone(),
            run_dir: config.run_dir.clone(),
            node_name: node.clone(),
            backoff: BackoffPolicy::default(),
            registries: coracle_image::RegistryConfig::load(&config.registry_config)?,
        };
        let network = coracle_network::NetworkConfig::new(config.data_dir.join("network"));
        let objects = Arc::new(kubelet_bridge::StoreObjects {
            store: store.clone(),
        });
        let observer = Arc::new(kubelet_bridge::StoreObserver::new(
            store.clone(),
            node.clone(),
        ));
        match Kubelet::new(kubelet_config, Some(network), objects, observer) {
            Ok(kubelet) => {
                let kubelet = Arc::new(kubelet);
                let info = &kubelet.node().info;
                let facts = node::NodeFacts {
                    name: node.clone(),
                    host_ip: info.host_ip.clone(),
                    cpus: info.cpus,
                    memory_bytes: info.memory_bytes,
                    storage_bytes: node::file_system_bytes(&config.data_dir),
                };
                node::register(&store, &facts)?;
                tasks.push(tokio::spawn(node::heartbeat(
                    store.clone(),
                    node.clone(),
                    stop_rx.clone(),
                )));
                tasks.push(tokio::spawn(kubelet_bridge::run(
                    kubelet,
                    store.clone(),
                    node.clone(),
                    stop_rx.clone(),
                )));
            }
            Err(err) => tracing::error!("the kubelet could not start, pods will not run: {err}"),
        }
    }

    tasks.push(tokio::spawn(garbage_collector::run(state.clone())));
    tasks.push(tokio::spawn(scheduler::run(state.clone())));
    let app = router::router(state);
    let server = tokio::spawn(http::serve(listener, tls_config, app, stop_rx));
    write_kubeconfig(&pki, addr, &token)?;
    tracing::info!(%addr, "coracle server ready");

    shutdown.await;
    tracing::info!("shutting down; containers keep running");
    let _ = stop_tx.send(true);
    let _ = server.await;
    for task in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    }
    compactor.abort();
    Ok(())
}

/// Writes the admin kubeconfig (`DATA/kubeconfig`, 0600).
fn write_kubeconfig(pki: &tls::Pki, addr: SocketAddr, token: &str) -> Result<(), ServerError> {
    let ca = std::fs::read(pki.file("ca.crt")).map_err(|source| tls::TlsError::Io {
        path: pki.file("ca.crt"),
        source,
    })?;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let server = match addr {
        SocketAddr::V6(_) if !addr.ip().is_unspecified() => {
            format!("https://[{host}]:{}", addr.port())
        }
        _ => format!("https://{host}:{}", addr.port()),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: coracle\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: coracle\n  context:\n    cluster: coracle\n    user: admin\n    namespace: default\ncurrent-context: coracle\n"
    );
    let path = pki.dir.parent().unwrap_or(&pki.dir).join("kubeconfig");
    tls::write_private(&path, &text, 0o600)?;
    Ok(())
}
