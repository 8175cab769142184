//! The pod engine: coracle's kubelet.
//!
//! It runs pods the way the upstream kubelet does: one sandbox per pod, volumes, init
//! containers strictly in order, sidecars, app containers, restarts with back-off, and a
//! status and event stream that matches Kubernetes 1.33 field for field.
//!
//! Layout, one module per step of a pod's life:
//! - [`state`]: what the engine remembers about a pod, on disk, so a restart of coracle loses
//!   nothing.
//! - [`plan`]: the pure decision of what to do next (upstream's `computePodActions`).
//! - [`backoff`]: crash-loop and image-pull back-off, keyed as upstream keys it.
//! - [`status`]: the `PodStatus` generated from the state (phase, conditions, container
//!   statuses).
//! - [`worker`]: the task that drives one pod: sandbox, images, containers, termination.
//! - [`volumes`], [`env`], [`objects`]: volumes, container environment, and the objects
//!   (ConfigMaps, Secrets) they read.

pub mod backoff;
pub mod engine;
pub mod env;
pub mod events;
pub mod node;
pub mod objects;
pub mod plan;
pub mod sandbox;
pub mod start;
pub mod state;
pub mod status;
pub mod volumes;
pub mod worker;

pub use backoff::BackoffPolicy;
pub use engine::{Kubelet, KubeletError};
pub use events::{EventType, PodEvent, PodObserver, Reason};
pub use node::{KubeletConfig, Node};
