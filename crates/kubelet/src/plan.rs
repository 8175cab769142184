//! What to do next for a pod: upstream's `computePodActions`, as a pure function.
//!
//! Given what the engine knows (the [`PodState`]) and the time, [`plan`] returns the steps of
//! one sync. The worker executes them and plans again whenever something changes (a container
//! exits, a back-off ends). Keeping the decision free of IO lets the tests state the kubelet's
//! rules directly:
//! - init containers run one at a time, in order; only the failed one is retried, by the
//!   pod's restart policy, and under `Never` a failure fails the pod;
//! - a sidecar (an init container with `restartPolicy: Always`) lets the next entry start as
//!   soon as it runs, and is restarted whatever the pod's policy;
//! - once any app container runs, the pod counts as initialized and regular init containers
//!   are never looked at again;
//! - app containers restart by the pod's policy, after back-off;
//! - when every app container has finished for good, the sidecars are stopped and the pod
//!   completes.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::backoff::{self, BackoffPolicy};
use crate::state::{ContainerRecord, PodState};

/// The three kinds of container a pod has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// A regular init container: runs to completion before the next entry.
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    /// An entry of `spec.containers`.
    App,
}

/// A container of the pod, by kind and position in its list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// Init, sidecar or app.
    pub kind: ContainerKind,
    /// Index in `spec.initContainers` or `spec.containers`.
    pub index: usize,
    /// The container's name.
    pub name: String,
}

impl ContainerRef {
    /// The container's spec in `pod`.
    pub fn spec<'a>(&self, pod: &'a Pod) -> &'a Container {
        let spec = pod.spec.as_ref().expect("admitted pods have a spec");
        match self.kind {
            ContainerKind::App => &spec.containers[self.index],
            _ => &spec
                .init_containers
                .as_ref()
                .expect("init container exists")[self.index],
        }
    }

    /// The event `fieldPath`: `spec.initContainers{name}` or `spec.containers{name}`.
    pub fn field_path(&self) -> String {
        match self.kind {
            ContainerKind::App => format!("spec.containers{{{}}}", self.name),
            _ => format!("spec.initContainers{{{}}}", self.name),
        }
    }
}

/// One step of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the pod's sandbox.
    CreateSandbox,
    /// Start a new instance of the container.
    Start(ContainerRef),
    /// The container must wait out its crash back-off first.
    BackOff {
        /// The container held back.
        container: ContainerRef,
        /// The back-off's full delay (for upstream's message).
        delay: Duration,
        /// How long is left.
        remaining: Duration,
    },
    /// A regular init container failed under `restartPolicy: Never`: the pod fails.
    FailPod,
    /// Every app container finished for good: stop the sidecars, the pod is done.
    Complete,
}

/// Whether `container` is a sidecar (upstream's `IsRestartableInitContainer`).
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// Every container of the pod in upstream's visiting order: init containers, then app
/// containers.
pub fn containers(pod: &Pod) -> Vec<ContainerRef> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| ContainerRef {
            kind: if is_sidecar(c) {
                ContainerKind::Sidecar
            } else {
                ContainerKind::Init
            },
            index: i,
            name: c.name.clone(),
        });
    let app = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| ContainerRef {
            kind: ContainerKind::App,
            index: i,
            name: c.name.clone(),
        });
    init.chain(app).collect()
}

/// The pod's restart policy (`Always` when unset, as upstream treats it).
pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether an exited app container is restarted under the pod's policy.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Upstream's stable back-off key: pod, namespace, uid, container name and image.
pub fn backoff_key(pod: &Pod, container: &Container) -> String {
    format!(
        "{}_{}_{}_{}_{}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default(),
        container.name,
        container.image.as_deref().unwrap_or_default(),
    )
}

/// Computes the steps of one sync.
pub fn plan(state: &PodState, policy: &BackoffPolicy, now: Timestamp) -> Vec<Step> {
    if state.terminal.is_some() || state.completed || state.deletion.is_some() {
        return Vec::new();
    }
    if state.sandbox.is_none() {
        return vec![Step::CreateSandbox];
    }

    let all = containers(&state.pod);
    let inits: Vec<&ContainerRef> = all
        .iter()
        .filter(|c| c.kind != ContainerKind::App)
        .collect();
    let apps: Vec<&ContainerRef> = all
        .iter()
        .filter(|c| c.kind == ContainerKind::App)
        .collect();
    let record = |c: &ContainerRef| state.record(&c.name).cloned().unwrap_or_default();

    // Every app container finished for good: stop the sidecars, do not restart them
    // (reference §2.7). App containers only ever ran after initialization, so this holds
    // whatever state the init containers are in.
    let pod_policy = restart_policy(&state.pod);
    let finished_for_good = |c: &&ContainerRef| {
        record(c)
            .exited()
            .is_some_and(|i| !should_restart(pod_policy, i.exit_code.unwrap_or(0)))
    };
    if !apps.is_empty() && apps.iter().all(finished_for_good) {
        return vec![Step::Complete];
    }

    let mut steps = Vec::new();
    let initialized = apps.iter().any(|c| record(c).running().is_some());
    if initialized {
        // After initialization only sidecars are looked after: keep them running.
        for c in inits.iter().filter(|c| c.kind == ContainerKind::Sidecar) {
            if record(c).running().is_none() {
                steps.push(start_or_backoff(state, policy, c, now));
            }
        }
    } else {
        let (init_steps, done) = init_steps(state, policy, &inits, now);
        steps.extend(init_steps);
        if !done {
            return steps;
        }
    }

    // App containers: start what never ran, restart what exited by the pod's policy.
    for c in &apps {
        let rec = record(c);
        match (&rec.current, rec.running()) {
            (_, Some(_)) => {}
            (None, None) => steps.push(start_or_backoff(state, policy, c, now)),
            (Some(exited), None) => {
                if should_restart(pod_policy, exited.exit_code.unwrap_or(0)) {
                    steps.push(start_or_backoff(state, policy, c, now));
                }
            }
        }
    }
    steps
}

/// Upstream's `computeInitContainerActions` before the pod is initialized: the last init
/// container with a record decides. Returns the steps and whether initialization is done.
fn init_steps(
    state: &PodState,
    policy: &BackoffPolicy,
    inits: &[&ContainerRef],
    now: Timestamp,
) -> (Vec<Step>, bool) {
    let empty = ContainerRecord::default();
    let rec = |c: &ContainerRef| state.record(&c.name).unwrap_or(&empty);
    let Some(i) = inits.iter().rposition(|c| rec(c).current.is_some()) else {
        return match inits.first() {
            None => (Vec::new(), true),
            Some(first) => (vec![start_or_backoff(state, policy, first, now)], false),
        };
    };

    // Sidecars before the deciding entry that are not running are restarted alongside.
    let mut steps: Vec<Step> = inits[..i]
        .iter()
        .filter(|c| c.kind == ContainerKind::Sidecar && rec(c).running().is_none())
        .map(|c| start_or_backoff(state, policy, c, now))
        .collect();

    let c = inits[i];
    let r = rec(c);
    let finished = match (c.kind, r.running(), r.exited()) {
        // A running regular init container: wait for it to exit.
        (ContainerKind::Init, Some(_), _) => false,
        // A running sidecar counts as started (no probes yet): go on to the next entry.
        (ContainerKind::Sidecar, Some(_), _) => true,
        // A sidecar that exited is restarted, whatever its exit code.
        (ContainerKind::Sidecar, None, _) => {
            steps.push(start_or_backoff(state, policy, c, now));
            false
        }
        (_, None, Some(exited)) if exited.succeeded() => true,
        // A failed regular init container: retried, or under `Never` the pod fails.
        _ => {
            if restart_policy(&state.pod) == "Never" {
                return (vec![Step::FailPod], false);
            }
            steps.push(start_or_backoff(state, policy, c, now));
            false
        }
    };
    if !finished {
        return (steps, false);
    }
    match inits.get(i + 1) {
        None => (steps, true),
        Some(next) => {
            steps.push(start_or_backoff(state, policy, next, now));
            (steps, false)
        }
    }
}

/// Starts `c` now, or reports the back-off it is in.
fn start_or_backoff(
    state: &PodState,
    policy: &BackoffPolicy,
    c: &ContainerRef,
    now: Timestamp,
) -> Step {
    let exited = state.record(&c.name).and_then(|r| r.exited());
    let Some(finished) = exited.and_then(|i| i.finished_at) else {
        return Step::Start(c.clone());
    };
    let key = backoff_key(&state.pod, c.spec(&state.pod));
    let entry = state.backoff.get(&key);
    match backoff::remaining(policy, entry, finished, now) {
        Some(remaining) => Step::BackOff {
            container: c.clone(),
            delay: entry.map(|e| e.delay).unwrap_or(policy.initial),
            remaining,
        },
        None => Step::Start(c.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Instance, SandboxRecord};
    use k8s_openapi::api::core::v1::PodSpec;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn container(name: &str, sidecar: bool) -> Container {
        Container {
            name: name.into(),
            image: Some("busybox".into()),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        }
    }

    /// A pod with init containers `inits` (name, is_sidecar) and app containers `apps`.
    fn pod_state(policy: &str, inits: &[(&str, bool)], apps: &[&str]) -> PodState {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.uid = Some("u".into());
        pod.spec = Some(PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: Some(inits.iter().map(|(n, s)| container(n, *s)).collect()),
            containers: apps.iter().map(|n| container(n, false)).collect(),
            ..Default::default()
        });
        let mut state = PodState::new(pod);
        state.sandbox = Some(SandboxRecord {
            id: "s".into(),
            attempt: 1,
            dir: "/nonexistent".into(),
            host_network: false,
            shares_pid: false,
            ips: vec![],
            created_at: t(0),
        });
        state
    }

    fn instance(started: i64, exit: Option<i32>) -> Instance {
        Instance {
            id: format!("id{started}"),
            sandbox_attempt: 1,
            image: "busybox".into(),
            image_id: String::new(),
            log_path: "/dev/null".into(),
            started_at: Some(t(started)),
            finished_at: exit.map(|_| t(started + 1)),
            exit_code: exit,
            signal: None,
            reason: None,
            message: None,
            termination_log: None,
        }
    }

    fn set(state: &mut PodState, name: &str, started: i64, exit: Option<i32>) {
        let rec = state.record_mut(name);
        rec.attempts += 1;
        rec.current = Some(instance(started, exit));
    }

    fn started(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Start(c) => Some(c.name.clone()),
                _ => None,
            })
            .collect()
    }

    const P: BackoffPolicy = BackoffPolicy::KUBERNETES;

    #[test]
    fn sandbox_comes_first() {
        let mut state = pod_state("Always", &[("init", false)], &["app"]);
        state.sandbox = None;
        assert_eq!(plan(&state, &P, t(0)), vec![Step::CreateSandbox]);
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        let mut state = pod_state("Always", &[("a", false), ("b", false)], &["app"]);
        assert_eq!(started(&plan(&state, &P, t(0))), ["a"]);
        set(&mut state, "a", 0, None);
        assert!(plan(&state, &P, t(1)).is_empty(), "wait while a runs");
        set(&mut state, "a", 0, Some(0));
        assert_eq!(started(&plan(&state, &P, t(2))), ["b"]);
        set(&mut state, "b", 2, Some(0));
        assert_eq!(started(&plan(&state, &P, t(4))), ["app"]);
    }

    #[test]
    fn failed_init_container_never_starts_app_containers_and_is_retried_alone() {
        let mut state = pod_state("Always", &[("a", false), ("b", false)], &["app"]);
        set(&mut state, "a", 0, Some(0));
        set(&mut state, "b", 2, Some(1));
        // First failure: immediate retry of b only.
        assert_eq!(started(&plan(&state, &P, t(3))), ["b"]);
    }

    #[test]
    fn failed_init_container_fails_the_pod_under_never() {
        let mut state = pod_state("Never", &[("a", false)], &["app"]);
        set(&mut state, "a", 0, Some(2));
        assert_eq!(plan(&state, &P, t(3)), vec![Step::FailPod]);
    }

    #[test]
    fn repeated_failures_wait_out_the_backoff() {
        let mut state = pod_state("OnFailure", &[("a", false)], &["app"]);
        set(&mut state, "a", 0, Some(1));
        let key = backoff_key(
            &state.pod,
            &state
                .pod
                .spec
                .as_ref()
                .unwrap()
                .init_containers
                .as_ref()
                .unwrap()[0],
        );
        state
            .backoff
            .insert(key, crate::backoff::next(&P, None, t(1), t(1)));
        set(&mut state, "a", 1, Some(1)); // exits at t(2)
        match &plan(&state, &P, t(5))[0] {
            Step::BackOff {
                delay, remaining, ..
            } => {
                assert_eq!(*delay, Duration::from_secs(10));
                assert_eq!(*remaining, Duration::from_secs(7));
            }
            other => panic!("expected back-off, got {other:?}"),
        }
        assert_eq!(started(&plan(&state, &P, t(12))), ["a"]);
    }

    #[test]
    fn sidecar_lets_the_next_init_container_start_once_running() {
        let mut state = pod_state("Never", &[("side", true), ("b", false)], &["app"]);
        assert_eq!(started(&plan(&state, &P, t(0))), ["side"]);
        set(&mut state, "side", 0, None);
        assert_eq!(started(&plan(&state, &P, t(1))), ["b"]);
        set(&mut state, "b", 1, Some(0));
        assert_eq!(started(&plan(&state, &P, t(3))), ["app"]);
    }

    #[test]
    fn sidecar_is_restarted_whatever_the_pod_policy() {
        let mut state = pod_state("Never", &[("side", true)], &["app"]);
        set(&mut state, "side", 0, None);
        set(&mut state, "app", 1, None);
        set(&mut state, "side", 0, Some(0));
        assert_eq!(started(&plan(&state, &P, t(5))), ["side"]);
    }

    #[test]
    fn app_restarts_never_rerun_init_containers() {
        let mut state = pod_state("Always", &[("a", false)], &["app"]);
        set(&mut state, "a", 0, Some(0));
        set(&mut state, "app", 2, Some(1));
        assert_eq!(started(&plan(&state, &P, t(5))), ["app"]);
    }

    #[test]
    fn finished_app_containers_complete_the_pod_and_stop_sidecars() {
        let mut state = pod_state("Never", &[("side", true)], &["app"]);
        set(&mut state, "side", 0, None);
        set(&mut state, "app", 1, Some(0));
        set(&mut state, "side", 0, Some(0));
        assert_eq!(plan(&state, &P, t(5)), vec![Step::Complete]);
    }

    #[test]
    fn on_failure_restarts_failed_app_containers_only() {
        let mut state = pod_state("OnFailure", &[], &["ok", "bad"]);
        set(&mut state, "ok", 0, Some(0));
        set(&mut state, "bad", 0, Some(3));
        assert_eq!(started(&plan(&state, &P, t(5))), ["bad"]);
    }
}
