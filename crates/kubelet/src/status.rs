//! The pod status generated from the engine's state, as the upstream kubelet generates it.
//!
//! - Container statuses follow `convertToAPIContainerStatuses`: every container without a
//!   record waits as `PodInitializing` (`ContainerCreating` for pods without init
//!   containers); a container the kubelet holds back waits with its reason and keeps its last
//!   exit in `lastState`; init statuses are in spec order, app statuses sorted by name.
//! - The phase follows `getPhase` literally, and terminal phases are sticky.
//! - Conditions come in upstream's order (`PodReadyToStartContainers`, `Initialized`,
//!   `Ready`, `ContainersReady`, `PodScheduled`) with its reasons and messages;
//!   `lastTransitionTime` changes only when a condition's status does.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::plan::{self, ContainerKind, ContainerRef};
use crate::state::{ContainerRecord, Instance, PodState};

/// The runtime prefix of `containerID` fields, as `containerd://` is for containerd.
pub const CONTAINER_ID_PREFIX: &str = "coracle://";

/// What the status needs to know about the node.
#[derive(Debug, Clone, Default)]
pub struct NodeAddresses {
    /// `status.hostIP`.
    pub host_ip: String,
}

/// Generates the pod's status at `now`, updating the remembered conditions.
pub fn generate(state: &mut PodState, node: &NodeAddresses, now: Timestamp) -> PodStatus {
    let pod = &state.pod;
    let has_init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|v| !v.is_empty());
    let all = plan::containers(pod);

    let mut init_statuses = Vec::new();
    let mut app_statuses = Vec::new();
    for c in &all {
        let status = container_status(c, c.spec(pod), state.record(&c.name), has_init);
        match c.kind {
            ContainerKind::App => app_statuses.push(status),
            _ => init_statuses.push(status),
        }
    }
    app_statuses.sort_by(|a, b| a.name.cmp(&b.name));

    let (phase, reason, message) = match &state.terminal {
        Some(t) => (t.phase.clone(), t.reason.clone(), t.message.clone()),
        None => (get_phase(pod, &init_statuses, &app_statuses), None, None),
    };
    let conditions = conditions(state, &init_statuses, &app_statuses, &phase, now);
    state.conditions = conditions.clone();

    let ips: Vec<String> = state
        .sandbox
        .as_ref()
        .map(|s| s.ips.clone())
        .unwrap_or_default();
    PodStatus {
        phase: Some(phase),
        reason,
        message,
        conditions: Some(conditions),
        host_ip: Some(node.host_ip.clone()).filter(|s| !s.is_empty()),
        host_ips: Some(vec![HostIP {
            ip: node.host_ip.clone(),
        }])
        .filter(|_| !node.host_ip.is_empty()),
        pod_ip: ips.first().cloned(),
        pod_ips: Some(ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect())
            .filter(|v: &Vec<PodIP>| !v.is_empty()),
        start_time: state.start_time.map(Time),
        init_container_statuses: Some(init_statuses).filter(|v| !v.is_empty()),
        container_statuses: Some(app_statuses),
        qos_class: Some(qos_class(pod).to_string()),
        ..Default::default()
    }
}

fn terminated(instance: &Instance) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(format!("{CONTAINER_ID_PREFIX}{}", instance.id)),
            exit_code: instance.exit_code.unwrap_or(0),
            signal: instance.signal,
            reason: instance.reason.clone(),
            message: instance.message.clone().filter(|m| !m.is_empty()),
            started_at: instance.started_at.map(Time),
            finished_at: instance.finished_at.map(Time),
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

/// One container's status from its record.
fn container_status(
    c: &ContainerRef,
    spec: &Container,
    record: Option<&ContainerRecord>,
    has_init: bool,
) -> ContainerStatus {
    let empty = ContainerRecord::default();
    let rec = record.unwrap_or(&empty);
    let default_reason = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };

    let (state, last_state) = match (&rec.waiting, &rec.current) {
        (Some(w), Some(cur)) if cur.finished_at.is_some() => {
            (waiting(&w.reason, w.message.clone()), Some(terminated(cur)))
        }
        (Some(w), _) => (
            waiting(&w.reason, w.message.clone()),
            rec.previous.as_ref().map(terminated),
        ),
        (None, Some(cur)) if cur.finished_at.is_none() => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: cur.started_at.map(Time),
                }),
                ..Default::default()
            },
            rec.previous.as_ref().map(terminated),
        ),
        (None, Some(cur)) => (terminated(cur), rec.previous.as_ref().map(terminated)),
        (None, None) => (
            waiting(default_reason, None),
            rec.previous.as_ref().map(terminated),
        ),
    };

    let running = rec.running().is_some();
    let ready = match c.kind {
        // A regular init container is ready once it has completed.
        ContainerKind::Init => rec.current.as_ref().is_some_and(Instance::succeeded),
        // Without probes, sidecars and app containers are ready while they run.
        ContainerKind::Sidecar | ContainerKind::App => running,
    };
    let current = rec.current.as_ref();
    ContainerStatus {
        name: c.name.clone(),
        image: current
            .map(|i| i.image.clone())
            .unwrap_or_else(|| normalize_image(spec.image.as_deref().unwrap_or_default())),
        image_id: current.map(|i| i.image_id.clone()).unwrap_or_default(),
        container_id: current.map(|i| format!("{CONTAINER_ID_PREFIX}{}", i.id)),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ready,
        restart_count: rec.restart_count(),
        started: Some(running),
        ..Default::default()
    }
}

/// The image name as the runtime reports it (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize_image(image: &str) -> String {
    coracle_image::normalize_reference(image).unwrap_or_else(|_| image.to_string())
}

fn status_of<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn st(status: &ContainerStatus) -> ContainerState {
    status.state.clone().unwrap_or_default()
}

fn last_terminated(status: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
}

/// Upstream's `getPhase` (reference §1.12).
pub fn get_phase(pod: &Pod, init: &[ContainerStatus], app: &[ContainerStatus]) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let (mut pending_init, mut pending_sidecars, mut failed_init) = (0, 0, 0);
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);

    for c in spec.init_containers.iter().flatten() {
        let status = status_of(init, &c.name);
        if plan::is_sidecar(c) {
            let Some(s) = status else {
                unknown += 1;
                continue;
            };
            let state = st(s);
            if state.running.is_some() {
                if s.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            } else if state.terminated.is_some() {
                // Terminated sidecars are ignored.
            } else if state.waiting.is_some() {
                if last_terminated(s).is_none() {
                    pending_sidecars += 1;
                }
            } else {
                pending_sidecars += 1;
                unknown += 1;
            }
            continue;
        }
        let Some(s) = status else {
            pending_init += 1;
            continue;
        };
        let state = st(s);
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match last_terminated(s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }

    let mut any_app_created = false;
    for c in &spec.containers {
        let Some(s) = status_of(app, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = st(s);
        if state.running.is_some() {
            running += 1;
            any_app_created = true;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            any_app_created = true;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if last_terminated(s).is_some() {
                stopped += 1;
                any_app_created = true;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if failed_init > 0 && policy == "Never" {
        return "Failed".into();
    }
    let phase = if ((pending_init > 0 || pending_sidecars > 0) && !any_app_created) || waiting > 0 {
        "Pending"
    } else if running > 0 && unknown == 0 {
        "Running"
    } else if running == 0 && stopped > 0 && unknown == 0 {
        if policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    };
    phase.into()
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

/// The pod conditions in upstream's order, with transition times carried over.
fn conditions(
    state: &PodState,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    phase: &str,
    now: Timestamp,
) -> Vec<PodCondition> {
    let pod = &state.pod;
    let sandbox_ready = state.sandbox.is_some() && !state.completed && state.terminal.is_none();

    // Initialized: regular init containers completed and sidecars started.
    let any_app_started = app.iter().any(|s| {
        let state = st(s);
        state.running.is_some() || state.terminated.is_some() || last_terminated(s).is_some()
    });
    let mut incomplete = Vec::new();
    for c in pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
    {
        let done = status_of(init, &c.name).is_some_and(|s| {
            if plan::is_sidecar(c) {
                s.started == Some(true)
            } else {
                s.ready
            }
        });
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    let initialized = if phase == "Succeeded" {
        condition("Initialized", true, Some("PodCompleted"), None)
    } else if incomplete.is_empty() || any_app_started {
        condition("Initialized", true, None, None)
    } else {
        condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    };

    // ContainersReady: every sidecar and app container ready.
    let mut unready = Vec::new();
    for c in pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
    {
        if plan::is_sidecar(c) && !status_of(init, &c.name).is_some_and(|s| s.ready) {
            unready.push(c.name.clone());
        }
    }
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if !status_of(app, &c.name).is_some_and(|s| s.ready) {
            unready.push(c.name.clone());
        }
    }
    let containers_ready = match phase {
        "Succeeded" => condition("ContainersReady", false, Some("PodCompleted"), None),
        "Failed" => condition("ContainersReady", false, Some("PodFailed"), None),
        _ if unready.is_empty() => condition("ContainersReady", true, None, None),
        _ => condition(
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        ),
    };
    let mut ready = containers_ready.clone();
    ready.type_ = "Ready".into();

    let fresh = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, None),
        initialized,
        ready,
        containers_ready,
        condition("PodScheduled", true, None, None),
    ];
    fresh
        .into_iter()
        .map(|mut c| {
            let previous = state.conditions.iter().find(|p| p.type_ == c.type_);
            c.last_transition_time = match previous {
                Some(p) if p.status == c.status => p.last_transition_time.clone(),
                _ => Some(Time(now)),
            };
            c
        })
        .collect()
}

/// The pod's QoS class: `Guaranteed`, `Burstable` or `BestEffort`, as upstream computes it.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let all: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in all {
        let res = c.resources.clone().unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        for r in ["cpu", "memory"] {
            let req = requests.get(r).or(limits.get(r));
            let lim = limits.get(r);
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (Some(q), Some(l)) if q.0 == l.0 => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
