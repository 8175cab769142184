//! coracle's container runtime: Kubernetes containers as OCI containers, driven by youki's
//! libcontainer in one helper process (the *shim*) per container.
//!
//! # The shim model
//!
//! libcontainer forks with a raw `clone3` and changes process-wide state (cwd, dumpable flag,
//! OOM score), so it must never run inside the multi-threaded daemon. [`ContainerRuntime::start`]
//! prepares everything that needs no fork (the overlay rootfs, `config.json`), then runs
//! `coracle shim <dir>`: a single-threaded re-exec of the coracle binary that detaches (it is
//! not the daemon's child once started), becomes a child subreaper, creates and starts the
//! container, reports the result on a pipe, copies the container's output into the CRI log,
//! waits for the exit, records it and cleans up. The daemon can exit or crash at any time: the
//! container keeps running, and a new daemon re-adopts it from the records on disk
//! ([`ContainerRuntime::list`], [`ContainerRuntime::wait`]). See [`shim`] for the steps.
//!
//! # On-disk layout
//!
//! ```text
//! DATA/containers/<id>/      one directory per container instance
//!     shim.json              what the shim needs (id, log path, cgroup, stop signal)
//!     config.json            the OCI runtime spec (the directory is the OCI bundle)
//!     rootfs/                overlayfs mount: lowerdir = image layers, upper/ + work/
//!     upper/ work/           this instance's writable layer
//!     started.json           shim and init pids (with start times), started_at
//!     exit.json              exit code, signal, OOM, finished_at (written atomically)
//!     shim.log               the shim's own log
//! RUN/containers/<id>/       libcontainer's state (RUN is e.g. /run/coracle)
//! <log_path>                 the CRI log, where the caller wants it (kept by remove)
//! <sandbox dir>/{net,ipc,uts} bind-mounted namespace files of a pod sandbox
//! <sandbox dir>/pid          with a shared PID namespace: its file, held by the pause
//!                            process recorded in pause.json (see [`pause`])
//! ```
//!
//! # Caveats
//!
//! Containers get no terminal (`tty: true` is ignored) and no stdin (`stdin: true` is ignored):
//! their stdin is `/dev/null`. Processes exec'd into a container ([`ContainerRuntime::exec`])
//! do get stdin and a terminal; see [`exec_shim`] for what they share with the container.
//! The container's cgroup is `<cgroup_parent>/<id>`; parent cgroups are left for the caller
//! to remove ([`cgroups::remove_cgroup`]).

#![allow(unsafe_code)]

pub mod cgroups;
pub mod command;
pub mod config;
pub mod error;
pub mod exec;
pub mod exec_shim;
pub mod executor;
pub mod logs;
pub mod pause;
pub mod rootfs;
pub mod runtime;
pub mod sandbox;
pub mod shim;
pub mod spec;
pub mod state;
pub mod user;

pub use config::{default_etc_mounts, ContainerConfig, Mount, Propagation, SandboxNamespaces};
pub use error::RuntimeError;
pub use exec::{ExecRequest, ExecSession};
pub use logs::{read_log, LogFollower, LogLine, Stream};
pub use runtime::ContainerRuntime;
pub use sandbox::{create_sandbox, load_sandbox, remove_sandbox};
pub use state::{ContainerStatus, ExitReason, ExitStatus};

pub use k8s_openapi;
pub use oci_spec;
