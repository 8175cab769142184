//! The pod sandbox: namespaces every container joins, the pod network, and the pod's own
//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
//!
//! Namespaces are held by bind-mounted namespace files, so a sandbox is "lost" when those files
//! are gone, for example after a reboot cleared `/run`: the worker then re-creates it and
//! re-runs every init container, as upstream does. A pod with `shareProcessNamespace: true`
//! also gets a PID namespace held by a pause process (a PID namespace dies with its PID 1);
//! its sandbox is lost as well when that process is gone, as upstream's is when the pause
//! container dies. Other pods have no pause process.

use std::fs;
use std::path::{Path, PathBuf};

use coracle_network::{PodRef, PortMapping};
use coracle_runtime::{Mount, Propagation, SandboxNamespaces};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use crate::node::Node;
use crate::state::SandboxRecord;

/// Errors creating or removing a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The namespaces could not be created.
    #[error("{0}")]
    Runtime(#[from] coracle_runtime::RuntimeError),
    /// The network plugins failed.
    #[error("{0}")]
    Network(#[from] coracle_network::NetworkError),
    /// The pod's files could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The pod's hostname: `spec.hostname` or the pod's name (the host's for `hostNetwork`).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.host_network == Some(true) {
        return nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
    }
    let name = spec
        .hostname
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    // A hostname is at most 63 characters; upstream truncates longer pod names.
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// Identifies the pod to the network plugins.
pub fn pod_ref(pod: &Pod, sandbox_id: &str) -> PodRef {
    PodRef {
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        sandbox_id: sandbox_id.to_string(),
    }
}

/// The sandbox's namespace files.
pub fn namespaces(record: &SandboxRecord) -> SandboxNamespaces {
    SandboxNamespaces {
        net: record.dir.join("net"),
        ipc: record.dir.join("ipc"),
        uts: record.dir.join("uts"),
        pid: record
            .shares_pid
            .then(|| record.dir.join(coracle_runtime::pause::PID_NS_FILE)),
    }
}

/// Whether the sandbox's namespaces still exist (for a shared PID namespace: whether its
/// pause process still runs).
pub fn is_alive(record: &SandboxRecord) -> bool {
    let ns = namespaces(record);
    let files = [ns.net, ns.ipc, ns.uts].iter().all(|p| is_nsfs(p));
    files && (!record.shares_pid || coracle_runtime::pause::is_alive(&record.dir))
}

fn is_nsfs(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == NSFS_MAGIC)
        .unwrap_or(false)
}

/// `hostPort`s of every container, for the portmap plugin.
fn port_mappings(pod: &Pod) -> Vec<PortMapping> {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = p.host_port.filter(|&h| h > 0)?;
            Some(PortMapping {
                host_port: host_port as u16,
                container_port: p.container_port as u16,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                host_ip: p.host_ip.clone().filter(|s| !s.is_empty()),
            })
        })
        .collect()
}

/// Creates a sandbox: namespaces, network, pod files.
pub async fn create(
    node: &Node,
    pod: &Pod,
    pod_dir: &Path,
    attempt: u32,
) -> Result<SandboxRecord, SandboxError> {
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    let shares_pid = pod.spec.as_ref().and_then(|s| s.share_process_namespace) == Some(true);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let id = format!("{}-{attempt}", &uid[..uid.len().min(36)]);
    let dir = node.config.run_dir.join("sandboxes").join(&id);
    let hostname = hostname(pod);

    // An earlier coracle may have been killed half-way through this very attempt, before it
    // could record it: clear what it left (the network first, as for any removal).
    if dir.exists() {
        let leftover = SandboxRecord {
            id: id.clone(),
            attempt,
            dir: dir.clone(),
            host_network,
            shares_pid,
            ips: Vec::new(),
            created_at: Timestamp::now(),
        };
        tracing::info!(sandbox = %id, "removing a sandbox whose creation was cut off");
        remove(node, pod, &leftover).await;
    }

    let create_dir = dir.clone();
    let create_host = hostname.clone();
    let runtime = node.runtime.clone();
    tokio::task::spawn_blocking(move || {
        coracle_runtime::create_sandbox(&create_dir, &create_host, host_network)?;
        if shares_pid {
            // The pause process; a failure leaves nothing behind.
            if let Err(err) = runtime.share_pid_namespace(&create_dir) {
                let _ = coracle_runtime::remove_sandbox(&create_dir);
                return Err(err);
            }
        }
        Ok(())
    })
    .await
    .expect("sandbox task does not panic")?;

    let mut ips = Vec::new();
    if host_network {
        ips.push(node.host_ip().to_string());
    } else if let Some(network) = &node.network {
        let netns = dir.join("net");
        match network
            .setup(&pod_ref(pod, &id), &netns, &port_mappings(pod))
            .await
        {
            Ok(status) => ips = status.ips.iter().map(|ip| ip.to_string()).collect(),
            Err(err) => {
                let _ = coracle_runtime::remove_sandbox(&dir);
                return Err(err.into());
            }
        }
    }

    let record = SandboxRecord {
        id,
        attempt,
        dir,
        host_network,
        shares_pid,
        ips,
        created_at: Timestamp::now(),
    };
    write_pod_files(pod, pod_dir, &record)?;
    Ok(record)
}

/// Removes a sandbox: network first (CNI DEL needs the namespace), then the namespaces.
pub async fn remove(node: &Node, pod: &Pod, record: &SandboxRecord) {
    if !record.host_network {
        if let Some(network) = &node.network {
            let netns = record.dir.join("net");
            let netns = netns.exists().then_some(netns.as_path());
            if let Err(err) = network.teardown(&pod_ref(pod, &record.id), netns).await {
                tracing::warn!(sandbox = %record.id, "network teardown: {err}");
            }
        }
    }
    let dir = record.dir.clone();
    let result = tokio::task::spawn_blocking(move || coracle_runtime::remove_sandbox(&dir)).await;
    if let Ok(Err(err)) = result {
        tracing::warn!(sandbox = %record.id, "sandbox removal: {err}");
    }
}

/// Writes `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` for the pod, as the kubelet
/// does (a "Kubernetes-managed hosts file" with the pod's address and host aliases).
fn write_pod_files(pod: &Pod, pod_dir: &Path, sandbox: &SandboxRecord) -> Result<(), SandboxError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = hostname(pod);
    let etc = pod_dir.join("etc");
    let write = |file: &str, content: String| {
        let path = etc.join(file);
        fs::create_dir_all(&etc)
            .and_then(|_| fs::write(&path, content))
            .map_err(|source| SandboxError::Io { path, source })
    };

    let hosts = if sandbox.host_network {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let mut hosts = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let fqdn = spec.subdomain.as_ref().map(|sub| {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            format!("{name}.{sub}.{ns}.svc.cluster.local")
        });
        for ip in &sandbox.ips {
            match &fqdn {
                Some(fqdn) => hosts.push_str(&format!("{ip}\t{fqdn}\t{name}\n")),
                None => hosts.push_str(&format!("{ip}\t{name}\n")),
            }
        }
        if spec.host_aliases.iter().flatten().next().is_some() {
            hosts.push_str("\n# Entries added by HostAliases.\n");
        }
        for alias in spec.host_aliases.iter().flatten() {
            let names = alias.hostnames.clone().unwrap_or_default().join("\t");
            hosts.push_str(&format!("{}\t{names}\n", alias.ip));
        }
        hosts
    };
    write("hosts", hosts)?;
    write("hostname", format!("{name}\n"))?;
    write("resolv.conf", resolv_conf(pod))?;
    Ok(())
}

/// The pod's resolv.conf. coracle has no cluster DNS yet, so `ClusterFirst` falls back to the
/// host's resolver (as upstream does when no cluster DNS is configured); `None` uses only
/// `dnsConfig`.
fn resolv_conf(pod: &Pod) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut servers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    if spec.dns_policy.as_deref() != Some("None") {
        for line in host.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => servers.extend(words.map(str::to_string)),
                Some("search") => searches.extend(words.map(str::to_string)),
                Some("options") => options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
    }
    if let Some(cfg) = &spec.dns_config {
        servers.extend(cfg.nameservers.clone().unwrap_or_default());
        searches.extend(cfg.searches.clone().unwrap_or_default());
        for o in cfg.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    let mut out = String::new();
    for s in servers.iter().take(3) {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The mounts of the pod's `/etc` files into a container.
pub fn etc_mounts(pod_dir: &Path) -> Vec<Mount> {
    ["hosts", "hostname", "resolv.conf"]
        .iter()
        .map(|file| Mount {
            host_path: pod_dir.join("etc").join(file),
            container_path: Path::new("/etc").join(file),
            read_only: false,
            propagation: Propagation::None,
        })
        .collect()
}
