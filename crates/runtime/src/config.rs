//! What the caller (the kubelet, or `coracle ctr`) asks the runtime to run.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSecurityContext};

use crate::RuntimeError;

/// Everything needed to create and start one container instance.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// Unique id of this instance, `[a-z0-9-]`, chosen by the caller.
    pub id: String,
    /// The Kubernetes container spec: command, args, workingDir, securityContext, resources.
    pub container: Container,
    /// The container's env list, already resolved (valueFrom/envFrom), in order, not yet
    /// `$(VAR)`-expanded.
    pub env: Vec<(String, String)>,
    /// The image's configuration (entrypoint, cmd, env, user, working dir, stop signal).
    pub image_config: oci_spec::image::ImageConfiguration,
    /// The image's unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    /// Bind mounts: volumes, /etc/hosts, /etc/hostname, /etc/resolv.conf, the termination log.
    pub mounts: Vec<Mount>,
    /// The pod sandbox whose namespaces to join; `None` gives the container its own.
    pub sandbox: Option<SandboxNamespaces>,
    /// The pod's security context, under the container's.
    pub pod_security: Option<PodSecurityContext>,
    /// The hostname, used when the container has its own UTS namespace.
    pub hostname: Option<String>,
    /// The parent cgroup, e.g. `/coracle/pod-<uid>`; the container's cgroup is `<parent>/<id>`.
    pub cgroup_parent: String,
    /// The pids limit of the container's cgroup, if any.
    pub pids_limit: Option<i64>,
    /// The CRI log file of this instance; the caller owns it (it survives [`remove`]).
    ///
    /// [`remove`]: crate::ContainerRuntime::remove
    pub log_path: PathBuf,
}

/// A host path bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The file or directory on the host.
    pub host_path: PathBuf,
    /// Where it appears in the container.
    pub container_path: PathBuf,
    /// Mount it read-only.
    pub read_only: bool,
    /// How mounts below it propagate.
    pub propagation: Propagation,
}

/// Mount propagation, as Kubernetes' `mountPropagation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// No propagation (`rprivate`), the Kubernetes default.
    #[default]
    None,
    /// Host mounts below the path appear in the container (`rslave`).
    HostToContainer,
    /// Both ways (`rshared`); needs a privileged container.
    Bidirectional,
}

/// A pod sandbox: files holding the pod's network, IPC and UTS namespaces, and its PID
/// namespace if the pod shares one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNamespaces {
    /// The network namespace file (a bind mount of `/proc/<pid>/ns/net`), also `CNI_NETNS`.
    pub net: PathBuf,
    /// The IPC namespace file.
    pub ipc: PathBuf,
    /// The UTS namespace file.
    pub uts: PathBuf,
    /// The PID namespace file when the pod shares one (`shareProcessNamespace`), whose PID 1
    /// is the sandbox's pause process; `None` gives each container a PID namespace of its own.
    pub pid: Option<PathBuf>,
}

/// Writes default `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` files into `dir` and
/// returns the mounts for them, for callers without a kubelet such as `coracle ctr`.
///
/// `hosts` maps localhost and `hostname`; `resolv.conf` is the host's (empty if it has none).
pub fn default_etc_mounts(dir: &Path, hostname: &str) -> Result<Vec<Mount>, RuntimeError> {
    std::fs::create_dir_all(dir).map_err(RuntimeError::io("cannot create", dir))?;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let files = [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ];

    let mut mounts = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(RuntimeError::io("cannot write", &path))?;
        mounts.push(Mount {
            host_path: path,
            container_path: Path::new("/etc").join(name),
            read_only: false,
            propagation: Propagation::None,
        });
    }
    Ok(mounts)
}
