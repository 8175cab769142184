//! The errors of the container runtime, one enum for the whole public API.
//!
//! Each variant names the container (or path) it concerns and chains the lower layer's error
//! with `#[source]`, so the CLI can print the whole chain on one line.

use std::path::PathBuf;

/// An error from the container runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No container with this id exists on disk.
    #[error("container \"{id}\" not found")]
    NotFound {
        /// The container id.
        id: String,
    },

    /// A container with this id already exists on disk.
    #[error("container \"{id}\" already exists")]
    AlreadyExists {
        /// The container id.
        id: String,
    },

    /// The container id is not made of `[a-z0-9-]`.
    #[error("invalid container id \"{id}\": use lowercase letters, digits and '-'")]
    InvalidId {
        /// The rejected id.
        id: String,
    },

    /// The operation needs an exited container.
    #[error("container \"{id}\" is still running")]
    StillRunning {
        /// The container id.
        id: String,
    },

    /// The operation needs a running container.
    #[error("container \"{id}\" is not running")]
    NotRunning {
        /// The container id.
        id: String,
    },

    /// A process could not be started in the container; `message` is the runtime's own error.
    #[error("cannot exec in container \"{id}\": {message}")]
    ExecFailed {
        /// The container id.
        id: String,
        /// The runtime's message, e.g. `exec: "nosuch": executable file not found in $PATH`.
        message: String,
    },

    /// The OCI runtime refused to create or start the container; `message` is its own last error.
    #[error("container \"{id}\" failed to start: {message}")]
    StartFailed {
        /// The container id.
        id: String,
        /// The runtime's message, e.g. `exec: "nosuch": executable file not found in $PATH`.
        message: String,
    },

    /// The Kubernetes container spec cannot be turned into an OCI spec.
    #[error("invalid spec for container \"{id}\": {reason}")]
    InvalidSpec {
        /// The container id.
        id: String,
        /// What is wrong.
        reason: String,
    },

    /// A file or directory operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was attempted, e.g. "cannot read".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A system call failed.
    #[error("{action}")]
    Sys {
        /// What was attempted, naming its object.
        action: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },

    /// A state file on disk could not be parsed.
    #[error("corrupt state file {path}")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// The pause process of a sandbox with a shared PID namespace could not be started.
    #[error("pause process of sandbox {dir} failed: {reason}")]
    Pause {
        /// The sandbox directory.
        dir: PathBuf,
        /// What happened.
        reason: String,
    },

    /// The shim process could not be started or died before reporting.
    #[error("shim of container \"{id}\" failed: {reason}")]
    Shim {
        /// The container id.
        id: String,
        /// What happened.
        reason: String,
    },
}

impl RuntimeError {
    /// Shorthand for [`RuntimeError::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io {
            action,
            path,
            source,
        }
    }

    /// Shorthand for [`RuntimeError::Sys`].
    pub(crate) fn sys(action: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let action = action.into();
        move |source| RuntimeError::Sys { action, source }
    }
}
