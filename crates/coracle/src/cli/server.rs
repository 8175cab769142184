//! `coracle server`: the Kubernetes API server with the kubelet, for the real `kubectl`.
//!
//! Writes the admin kubeconfig to `DATA/kubeconfig` once ready. SIGTERM or Ctrl-C stops it
//! gracefully; pods' containers keep running and are re-adopted on the next start.

use std::net::SocketAddr;

use anyhow::Context;

use crate::GlobalArgs;

/// Options of `coracle server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The address to serve HTTPS on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(global: &GlobalArgs, args: ServerArgs) -> anyhow::Result<i32> {
    let config = coracle_apiserver::ServerConfig {
        data_dir: global.data_dir.clone(),
        run_dir: super::run_dir(),
        listen: args.listen,
        registry_config: global.registry_config.clone(),
        kubelet: true,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    coracle_apiserver::run(config, shutdown)
        .await
        .context("coracle server")?;
    Ok(0)
}
