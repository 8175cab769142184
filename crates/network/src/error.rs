//! The one error type of the crate.
//!
//! The crate is small and every failure ends up in front of the same caller (the kubelet, which
//! puts the message into a pod event or condition), so there is a single enum. Each variant names
//! the object it is about: the plugin, the network, the pod or the file. Plugin failures carry the
//! plugin's own `msg` and `details` verbatim, because those are what tell a user what went wrong
//! ("no IP addresses available in range set", "invalid CIDR address").

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::result::PluginError;

/// Why a pod network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The node's masquerade rules for the pod network could not be set up.
    #[error("cannot set up the pod network's masquerade rules")]
    Masquerade(#[from] crate::iptables::IptablesError),

    /// A plugin named by the network configuration is in none of the plugin directories.
    #[error(
        "cni plugin {plugin:?} not found in {dirs} \
         (install the Debian package containernetworking-plugins or set the plugin directories)"
    )]
    MissingPlugin {
        /// The plugin's `type`.
        plugin: String,
        /// The directories searched, comma-separated.
        dirs: String,
    },

    /// A network configuration file could not be read.
    #[error("cannot read cni network configuration {path}")]
    ReadConfig {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A network configuration file is not valid.
    #[error("invalid cni network configuration {path}: {reason}")]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration directory holds no `.conflist`, `.conf` or `.json` file.
    #[error("no cni network configuration (*.conflist, *.conf, *.json) in {dir}")]
    NoConfig {
        /// The directory searched.
        dir: PathBuf,
    },

    /// The sandbox id cannot be used as a CNI container id.
    #[error(
        "sandbox id {id:?} of pod {pod} is not a valid cni container id \
         (letters, digits, '_', '.', '-', starting with a letter or digit)"
    )]
    InvalidSandboxId {
        /// The pod, as `namespace/name`.
        pod: String,
        /// The offending id.
        id: String,
    },

    /// A path given as the pod's network namespace is not one.
    #[error("network namespace {path} of pod {pod} is not a mounted network namespace")]
    NotANetns {
        /// The pod, as `namespace/name`.
        pod: String,
        /// The path.
        path: PathBuf,
    },

    /// The plugin binary could not be started or waited for.
    #[error("cannot run cni plugin {plugin:?} ({path})")]
    Spawn {
        /// The plugin's `type`.
        plugin: String,
        /// The binary.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The plugin did not finish in time and was killed.
    #[error("{call}: no answer within {timeout:?}, killed")]
    Timeout {
        /// Which plugin was run for what.
        call: Box<PluginCall>,
        /// The limit.
        timeout: Duration,
    },

    /// The plugin reported an error object on stdout.
    #[error("{call}: {error}")]
    Plugin {
        /// Which plugin was run for what.
        call: Box<PluginCall>,
        /// The plugin's error object.
        error: Box<PluginError>,
    },

    /// The plugin failed without a parsable error object (crashed, or wrote plain text).
    #[error("{call} ({status}): {output}")]
    PluginCrashed {
        /// Which plugin was run for what.
        call: Box<PluginCall>,
        /// The exit status as text.
        status: String,
        /// Whatever the plugin wrote, stdout then stderr, trimmed.
        output: String,
    },

    /// The plugin succeeded but its stdout is not a CNI result.
    #[error("cni plugin {plugin:?} of network {network:?} returned an invalid result: {reason}")]
    InvalidResult {
        /// The plugin's `type`.
        plugin: String,
        /// The network name.
        network: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The network was added but the result holds no address for the pod.
    #[error("network {network:?} gave pod {pod} no ip address")]
    NoPodIp {
        /// The network name.
        network: String,
        /// The pod, as `namespace/name`.
        pod: String,
    },

    /// `check` was called for a pod whose network was never set up (no cached result).
    #[error("pod {pod} has no network {network:?} set up (no cached cni result)")]
    NotSetUp {
        /// The network name.
        network: String,
        /// The pod, as `namespace/name`.
        pod: String,
    },

    /// The cached result of a pod could not be written or read.
    #[error("cannot access cni result cache {path}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// One run of a plugin that failed: which plugin, for which network, command and pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCall {
    /// The plugin's `type`.
    pub plugin: String,
    /// The network name.
    pub network: String,
    /// `ADD`, `DEL` or `CHECK`.
    pub command: &'static str,
    /// The pod, as `namespace/name`.
    pub pod: String,
}

impl fmt::Display for PluginCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cni plugin {:?} of network {:?} failed {} for pod {}",
            self.plugin, self.network, self.command, self.pod
        )
    }
}
