//! The STATUS, READY and RESTARTS cells of `kubectl get pods`, computed as upstream's
//! server-side `printPod` computes them, and apimachinery's `HumanDuration` for ages.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The `status.reason` the node controller sets on pods of an unreachable node.
const NODE_LOST: &str = "NodeLost";

/// The three computed cells of a `kubectl get pods` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodColumns {
    /// STATUS, e.g. `Init:1/2`, `Running`, `CrashLoopBackOff`, `Terminating`.
    pub status: String,
    /// READY, `<ready>/<total>` where sidecars count towards the total.
    pub ready: String,
    /// RESTARTS, e.g. `0` or `3 (10s ago)`.
    pub restarts: String,
}

/// Restart total and the newest `lastState.terminated.finishedAt` among the counted containers.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &ContainerStatus) {
        self.count += i64::from(status.restart_count);
        let finished = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref());
        if let Some(Time(t)) = finished.and_then(|t| t.finished_at.as_ref()) {
            if self.last.is_none_or(|last| last < *t) {
                self.last = Some(*t);
            }
        }
    }
}

fn is_sidecar(container: Option<&&Container>) -> bool {
    container.is_some_and(|c| c.restart_policy.as_deref() == Some("Always"))
}

fn condition_true(conditions: &[PodCondition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// STATUS, READY and RESTARTS of `pod` at time `now`.
pub fn pod_status_columns(pod: &Pod, now: Timestamp) -> PodColumns {
    let empty_spec = Default::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty_spec);
    let empty_status = Default::default();
    let status = pod.status.as_ref().unwrap_or(&empty_status);
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();

    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = match status.reason.as_deref() {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => phase.clone(),
    };
    let gated = conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"));
    if gated {
        reason = "SchedulingGated".to_string();
    }

    let by_name: BTreeMap<&str, &Container> =
        init_specs.iter().map(|c| (c.name.as_str(), c)).collect();
    let sidecars = init_specs
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .count();
    let total = spec.containers.len() + sidecars;
    let mut ready = 0;
    let mut all_restarts = Restarts::default();
    let mut sidecar_restarts = Restarts::default();

    // Init loop: the first entry that is neither finished nor a started sidecar decides.
    let mut initializing = false;
    for (i, cs) in status.init_container_statuses.iter().flatten().enumerate() {
        all_restarts.add(cs);
        let sidecar = is_sidecar(by_name.get(cs.name.as_str()));
        if sidecar {
            sidecar_restarts.add(cs);
        }
        let state = cs.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting_reason = state
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref());
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && cs.started == Some(true) {
            if cs.ready {
                ready += 1;
            }
            continue;
        }
        reason = match (terminated, waiting_reason) {
            (Some(t), _) => match t.reason.as_deref() {
                Some(r) if !r.is_empty() => format!("Init:{r}"),
                _ if t.signal.unwrap_or(0) != 0 => format!("Init:Signal:{}", t.signal.unwrap_or(0)),
                _ => format!("Init:ExitCode:{}", t.exit_code),
            },
            (None, Some(w)) if !w.is_empty() && w != "PodInitializing" => format!("Init:{w}"),
            _ => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    let mut restarts = all_restarts;
    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        let mut has_running = false;
        // Last to first, so the lowest-index container with something to say wins.
        for cs in status.container_statuses.iter().flatten().rev() {
            restarts.add(cs);
            let state = cs.state.as_ref();
            let waiting = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref());
            let terminated = state.and_then(|s| s.terminated.as_ref());
            if let Some(w) = waiting.filter(|w| !w.is_empty()) {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match t.reason.as_deref() {
                    Some(r) if !r.is_empty() => r.to_string(),
                    _ if t.signal.unwrap_or(0) != 0 => format!("Signal:{}", t.signal.unwrap_or(0)),
                    _ => format!("ExitCode:{}", t.exit_code),
                };
            } else if cs.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some(NODE_LOST) {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    let restarts = match restarts.last {
        Some(last) if restarts.count != 0 => {
            format!(
                "{} ({} ago)",
                restarts.count,
                human_duration(now.duration_since(last))
            )
        }
        _ => restarts.count.to_string(),
    };
    PodColumns {
        status: reason,
        ready: format!("{ready}/{total}"),
        restarts,
    }
}

/// AGE of an object created at `t`: `<unknown>` without a timestamp, else [`human_duration`].
pub fn age(t: Option<&Time>, now: Timestamp) -> String {
    match t {
        Some(Time(t)) => human_duration(now.duration_since(*t)),
        None => "<unknown>".to_string(),
    }
}

/// apimachinery's `HumanDuration`: `5s`, `3m20s`, `5h`, `2d3h`, `3y10d` ….
///
/// Up to one second in the future counts as now (`0s`, clock skew); further is `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests;
