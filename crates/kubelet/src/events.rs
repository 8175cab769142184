//! Events the engine records about a pod, and where statuses and events go.
//!
//! Reasons and message texts are upstream's (Kubernetes 1.33, reference §3.8). The engine
//! does not know who listens: `coracle run` prints them, the API server stores them. Both
//! implement [`PodObserver`].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

/// `Normal` or `Warning`, as in `kubectl get events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The event reasons coracle emits, by upstream's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The pod was bound to the node.
    Scheduled,
    /// An image pull begins.
    Pulling,
    /// An image is present (pulled or already there).
    Pulled,
    /// A pull, create or start failed.
    Failed,
    /// A container or an image pull is held back.
    BackOff,
    /// `imagePullPolicy: Never` and the image is missing.
    ErrImageNeverPull,
    /// The image reference could not be parsed.
    InspectFailed,
    /// A container was created.
    Created,
    /// A container was started.
    Started,
    /// A container is being stopped.
    Killing,
    /// The sandbox was lost and is re-created.
    SandboxChanged,
    /// The sandbox could not be created.
    FailedCreatePodSandBox,
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
}

impl Reason {
    /// The reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Scheduled => "Scheduled",
            Reason::Pulling => "Pulling",
            Reason::Pulled => "Pulled",
            Reason::Failed => "Failed",
            Reason::BackOff => "BackOff",
            Reason::ErrImageNeverPull => "ErrImageNeverPull",
            Reason::InspectFailed => "InspectFailed",
            Reason::Created => "Created",
            Reason::Started => "Started",
            Reason::Killing => "Killing",
            Reason::SandboxChanged => "SandboxChanged",
            Reason::FailedCreatePodSandBox => "FailedCreatePodSandBox",
            Reason::DeadlineExceeded => "DeadlineExceeded",
        }
    }
}

/// One event about a pod.
#[derive(Debug, Clone)]
pub struct PodEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// Upstream's reason.
    pub reason: Reason,
    /// Upstream's message text.
    pub message: String,
    /// `spec.initContainers{name}` or `spec.containers{name}` for container events.
    pub field_path: Option<String>,
    /// `kubelet`, or `default-scheduler` for `Scheduled`.
    pub source: &'static str,
    /// When it happened.
    pub time: Timestamp,
}

/// Receives what the engine reports. Calls come from the pod's worker task and must not block
/// for long.
pub trait PodObserver: Send + Sync {
    /// The pod's status changed; `pod.status` holds the new one.
    fn status(&self, pod: &Pod);
    /// An event about `pod`.
    fn event(&self, pod: &Pod, event: &PodEvent);
    /// The pod's worker has finished: the pod is gone from the node.
    fn removed(&self, _pod: &Pod) {}
}
