//! The pod worker: one task per pod, driving it from admission to removal.
//!
//! Each turn of the loop is one sync, as upstream's `SyncPod`:
//! 1. learn what exited since the last turn (from the runtime's exit records);
//! 2. handle deletion, `activeDeadlineSeconds` and a lost sandbox;
//! 3. ask [`plan`](crate::plan) what to do, and do it (create the sandbox, start or hold back
//!    containers, fail or complete the pod);
//! 4. save the state, publish the status if it changed;
//! 5. sleep until a container exits, a back-off or deadline ends, or a command arrives.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::mpsc;

use crate::backoff::go_duration;
use crate::events::{EventType, Reason};
use crate::node::Node;
use crate::plan::{self, ContainerKind, ContainerRef, Step};
use crate::start::{self, emit, Outcome};
use crate::state::{Deletion, Instance, PodState, Terminal, Waiting};
use crate::status::{self, NodeAddresses};
use crate::volumes::{self, PodVolumes};

/// Messages a worker receives.
#[derive(Debug)]
pub enum Message {
    /// A container instance exited (by runtime id).
    Exited(String),
    /// Delete the pod: stop its containers with this grace period (the pod's own when
    /// `None`), then remove it from the node.
    Delete(Option<i64>),
}

/// The last moment to give up on a grace period: at least 2 s, as upstream's minimum.
const MIN_GRACE: Duration = Duration::from_secs(2);

/// How often an idle worker looks whether its sandbox still exists, as upstream's PLEG
/// relists the runtime every second and syncs a pod whose sandbox died.
const RELIST_PERIOD: Duration = Duration::from_secs(1);

/// Returns once the sandbox's namespaces are gone; never without a sandbox.
async fn sandbox_lost(sandbox: Option<crate::state::SandboxRecord>) {
    let Some(record) = sandbox else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(RELIST_PERIOD).await;
        if !crate::sandbox::is_alive(&record) {
            return;
        }
    }
}

/// One pod's worker.
pub struct Worker {
    node: Arc<Node>,
    state: PodState,
    dir: PathBuf,
    rx: mpsc::Receiver<Message>,
    tx: mpsc::Sender<Message>,
    watched: HashSet<String>,
    volumes: Option<PodVolumes>,
    published: Option<PodStatus>,
    /// A container found half-started by an earlier process: look again soon.
    recheck_soon: bool,
}

impl Worker {
    /// A worker for `state`, fed by `rx`; `tx` is the sending side of the same channel.
    pub fn new(
        node: Arc<Node>,
        state: PodState,
        tx: mpsc::Sender<Message>,
        rx: mpsc::Receiver<Message>,
    ) -> Self {
        let dir = node.config.pod_dir(state.uid());
        Worker {
            node,
            state,
            dir,
            rx,
            tx,
            watched: HashSet::new(),
            volumes: None,
            published: None,
            recheck_soon: false,
        }
    }

    /// Runs the pod until it is deleted.
    pub async fn run(mut self) {
        let name = self.state.pod.metadata.name.clone().unwrap_or_default();
        if self.state.start_time.is_none() {
            self.state.start_time = Some(Timestamp::now());
            let msg = format!(
                "Successfully assigned {}/{} to {}",
                self.state
                    .pod
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or("default"),
                name,
                self.node.config.node_name
            );
            emit(
                &self.node,
                &self.state.pod,
                EventType::Normal,
                Reason::Scheduled,
                msg,
                None,
            );
        }
        loop {
            let wake = self.sync().await;
            self.save_and_publish();
            if self.state.deletion.is_some() && self.all_stopped() {
                self.remove().await;
                return;
            }
            if wake == Some(Duration::ZERO) {
                continue;
            }
            let sleep = wake.unwrap_or(Duration::from_secs(3600));
            let sandbox = self.state.sandbox.clone();
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => return,
                },
                _ = tokio::time::sleep(sleep) => {}
                _ = sandbox_lost(sandbox) => {}
            }
            // Take whatever else is queued before the next sync.
            while let Ok(msg) = self.rx.try_recv() {
                self.handle(msg);
            }
        }
    }

    fn handle(&mut self, msg: Message) {
        match msg {
            Message::Exited(id) => {
                self.watched.remove(&id);
            }
            Message::Delete(grace) => {
                if self.state.deletion.is_none() {
                    let grace = grace.unwrap_or_else(|| self.grace_period());
                    self.state.deletion = Some(Deletion {
                        requested_at: Timestamp::now(),
                        grace_seconds: grace,
                    });
                }
            }
        }
    }

    fn grace_period(&self) -> i64 {
        self.state
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
    }

    /// One sync; returns when to sync again (`Some(ZERO)`: right away; `None`: on a message).
    async fn sync(&mut self) -> Option<Duration> {
        self.refresh();
        self.watch_running();

        if let Some(deletion) = self.state.deletion.clone() {
            self.kill_pod(deletion.grace_seconds, "Stopping container")
                .await;
            return None;
        }
        if self.state.terminal.is_some() || self.state.completed {
            return None;
        }
        if let Some(wait) = self.check_deadline().await {
            return wait;
        }
        self.check_sandbox().await;
        if self.volumes.is_none() && self.state.sandbox.is_some() {
            self.prepare_volumes();
        }

        let now = Timestamp::now();
        let steps = plan::plan(&self.state, &self.node.config.backoff, now);
        let mut wake: Option<Duration> = self.deadline_left();
        if std::mem::take(&mut self.recheck_soon) {
            wake = min_wake(wake, Duration::from_secs(1));
        }
        let mut progressed = false;
        for step in steps {
            match step {
                Step::CreateSandbox => {
                    progressed |= self.create_sandbox().await;
                    if !progressed {
                        wake = min_wake(wake, self.node.config.backoff.initial);
                    }
                }
                Step::Start(c) => {
                    let Some(volumes) = self.volumes.clone() else {
                        wake = min_wake(wake, self.node.config.backoff.initial);
                        continue;
                    };
                    match start::start(&self.node, &mut self.state, &self.dir, &volumes, &c).await {
                        Outcome::Started | Outcome::StartFailed => progressed = true,
                        Outcome::Held(d) => wake = min_wake(wake, d),
                    }
                    self.save_and_publish();
                }
                Step::BackOff {
                    container,
                    delay,
                    remaining,
                } => {
                    self.hold_back(&container, delay);
                    wake = min_wake(wake, remaining);
                }
                Step::FailPod => {
                    self.kill_pod(self.grace_period(), "Stopping container")
                        .await;
                    self.finish("Failed", None, None);
                    return None;
                }
                Step::Complete => {
                    self.kill_pod(self.grace_period(), "Stopping container")
                        .await;
                    self.state.completed = true;
                    progressed = true;
                }
            }
        }
        self.watch_running();
        self.settle_phase().await;
        if progressed {
            Some(Duration::ZERO)
        } else {
            wake
        }
    }

    /// Records exits the runtime has seen since the last sync.
    fn refresh(&mut self) {
        let names: Vec<String> = self.state.containers.keys().cloned().collect();
        let mut exited_ids = Vec::new();
        for name in names {
            let Some(running) = self.state.record(&name).and_then(|r| r.running()).cloned() else {
                continue;
            };
            let status = self.node.runtime.status(&running.id);
            if running.started_at.is_none() && self.adopt_unstarted(&name, &running, &status) {
                continue;
            }
            let exited = match status {
                Ok(status) if status.exit().is_none() => continue,
                Ok(status) => exited_instance(&running, &status, self.policy_of(&name)),
                Err(err) => {
                    // The runtime lost it (a reboot, a removed state dir): upstream reports
                    // such a container as terminated with ContainerStatusUnknown.
                    tracing::warn!(container = %name, "container vanished: {err}");
                    let mut lost = running.clone();
                    lost.finished_at = Some(Timestamp::now());
                    lost.exit_code = Some(137);
                    lost.reason = Some("ContainerStatusUnknown".into());
                    lost.message = Some(
                        "The container could not be located when the pod was terminated".into(),
                    );
                    lost
                }
            };
            tracing::info!(
                container = %name,
                exit_code = exited.exit_code,
                reason = exited.reason.as_deref(),
                "container exited"
            );
            exited_ids.push(running.id.clone());
            self.state.record_mut(&name).current = Some(exited);
        }

        // The exits reach the disk before the containers go: a coracle killed in between
        // must not find a recorded running container that no longer exists. The status is
        // published before anything else starts, as the kubelet sets it at the top of each
        // sync: the exit of the last init container shows `PodInitializing` before the app
        // containers run.
        if exited_ids.is_empty() {
            return;
        }
        self.save_and_publish();
        for id in exited_ids {
            let _ = self.node.runtime.remove(&id);
        }
    }

    /// An instance recorded just before its start, found by a later coracle process:
    /// running, it is adopted; never created, it is forgotten so the plan starts it again.
    /// Returns whether `refresh` is done with it.
    fn adopt_unstarted(
        &mut self,
        name: &str,
        instance: &crate::state::Instance,
        status: &Result<coracle_runtime::ContainerStatus, coracle_runtime::RuntimeError>,
    ) -> bool {
        use coracle_runtime::ContainerStatus;
        match status {
            Ok(ContainerStatus::Running { started_at, .. }) => {
                let mut adopted = instance.clone();
                adopted.started_at = Some(crate::state::timestamp(*started_at));
                tracing::info!(container = %name, "adopted a container started by an earlier run");
                self.state.record_mut(name).current = Some(adopted);
                true
            }
            Ok(ContainerStatus::Exited(_)) => false,
            // Created but not started: its shim may still be at work (it outlives the coracle
            // that ran it), or may have died with it. Give it time before starting anew.
            Ok(ContainerStatus::Created) if self.recently_touched(&instance.id) => {
                self.recheck_soon = true;
                true
            }
            Ok(ContainerStatus::Created) | Err(_) => {
                let _ = self.node.runtime.remove(&instance.id);
                tracing::info!(container = %name, "starting again a container whose start was cut off");
                self.state.record_mut(name).forget_unstarted();
                true
            }
        }
    }

    /// Whether the container's directory changed in the last 10 seconds.
    fn recently_touched(&self, id: &str) -> bool {
        std::fs::metadata(self.node.runtime.container_dir(id))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < Duration::from_secs(10))
    }

    fn policy_of(&self, name: &str) -> Option<String> {
        plan::containers(&self.state.pod)
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| {
                c.spec(&self.state.pod)
                    .termination_message_policy
                    .clone()
                    .unwrap_or_else(|| "File".into())
            })
    }

    /// Makes sure every running instance has a task waiting for its exit.
    fn watch_running(&mut self) {
        let running: Vec<String> = self
            .state
            .containers
            .values()
            .filter_map(|r| r.running().map(|i| i.id.clone()))
            .collect();
        for id in running {
            if !self.watched.insert(id.clone()) {
                continue;
            }
            let runtime = self.node.runtime.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = runtime.wait(&id).await;
                let _ = tx.send(Message::Exited(id)).await;
            });
        }
    }

    /// Holds a container in `CrashLoopBackOff`, with upstream's message and event.
    fn hold_back(&mut self, c: &ContainerRef, delay: Duration) {
        let pod = &self.state.pod;
        let who = format!(
            "{}_{}({})",
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.uid.as_deref().unwrap_or_default()
        );
        let waiting = Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some(format!(
                "back-off {} restarting failed container={} pod={who}",
                go_duration(delay),
                c.name
            )),
        };
        if self.state.record(&c.name).and_then(|r| r.waiting.as_ref()) != Some(&waiting) {
            let msg = format!(
                "Back-off restarting failed container {} in pod {who}",
                c.name
            );
            emit(
                &self.node,
                pod,
                EventType::Warning,
                Reason::BackOff,
                msg,
                Some(c.field_path()),
            );
        }
        self.state.record_mut(&c.name).waiting = Some(waiting);
    }

    /// Creates the sandbox; on failure the pod waits and tries again.
    async fn create_sandbox(&mut self) -> bool {
        let attempt = self.state.sandbox_attempts + 1;
        match crate::sandbox::create(&self.node, &self.state.pod, &self.dir, attempt).await {
            Ok(record) => {
                tracing::info!(sandbox = %record.id, ips = ?record.ips, "sandbox ready");
                self.state.sandbox_attempts = attempt;
                self.state.sandbox = Some(record);
                true
            }
            Err(err) => {
                let msg = format!("Failed to create pod sandbox: {err}");
                emit(
                    &self.node,
                    &self.state.pod,
                    EventType::Warning,
                    Reason::FailedCreatePodSandBox,
                    msg,
                    None,
                );
                false
            }
        }
    }

    /// Re-creates a lost sandbox: every container is stopped and init containers run again
    /// from the first (reference §1.6).
    async fn check_sandbox(&mut self) {
        let Some(record) = self.state.sandbox.clone() else {
            return;
        };
        if crate::sandbox::is_alive(&record) {
            return;
        }
        let msg = "Pod sandbox changed, it will be killed and re-created.".to_string();
        emit(
            &self.node,
            &self.state.pod,
            EventType::Normal,
            Reason::SandboxChanged,
            msg,
            None,
        );
        self.kill_pod(self.grace_period(), "Stopping container")
            .await;
        crate::sandbox::remove(&self.node, &self.state.pod, &record).await;
        self.state.sandbox = None;
        if plan::restart_policy(&self.state.pod) == "Never" && self.any_app_ran() {
            // Upstream does not re-create the sandbox of a Never pod whose containers ran.
            return;
        }
        // Purge init containers so they run again, in order.
        for c in plan::containers(&self.state.pod) {
            if c.kind != ContainerKind::App {
                let rec = self.state.record_mut(&c.name);
                if rec.current.is_some() {
                    rec.previous = rec.current.take();
                }
                rec.waiting = None;
            }
        }
    }

    fn any_app_ran(&self) -> bool {
        plan::containers(&self.state.pod)
            .iter()
            .filter(|c| c.kind == ContainerKind::App)
            .any(|c| {
                self.state
                    .record(&c.name)
                    .is_some_and(|r| r.current.is_some())
            })
    }

    fn prepare_volumes(&mut self) {
        let mut pod = self.state.pod.clone();
        if let Some(sandbox) = &self.state.sandbox {
            let status = pod.status.get_or_insert_with(Default::default);
            status.pod_ip = sandbox.ips.first().cloned();
        }
        match volumes::setup_volumes(&pod, &self.dir, self.node.objects.as_ref(), &self.node.info) {
            Ok(v) => self.volumes = Some(v),
            Err(err) => {
                let msg = err.event_message();
                tracing::warn!("{msg}");
                emit(
                    &self.node,
                    &self.state.pod,
                    EventType::Warning,
                    Reason::Failed,
                    msg,
                    None,
                );
            }
        }
    }

    fn deadline_left(&self) -> Option<Duration> {
        let secs = self.state.pod.spec.as_ref()?.active_deadline_seconds?;
        let start = self.state.start_time?;
        let end = start.checked_add(SignedDuration::from_secs(secs)).ok()?;
        let left = Timestamp::now().duration_until(end);
        Some(Duration::try_from(left).unwrap_or_default())
    }

    /// `activeDeadlineSeconds`, counted from the pod's start, init containers included.
    async fn check_deadline(&mut self) -> Option<Option<Duration>> {
        if self.deadline_left()? > Duration::ZERO {
            return None;
        }
        let msg = "Pod was active on the node longer than the specified deadline";
        emit(
            &self.node,
            &self.state.pod,
            EventType::Normal,
            Reason::DeadlineExceeded,
            msg.into(),
            None,
        );
        self.kill_pod(self.grace_period(), "Stopping container")
            .await;
        self.finish("Failed", Some("DeadlineExceeded"), Some(msg));
        Some(None)
    }

    /// Makes a terminal phase sticky and releases the sandbox once nothing runs.
    async fn settle_phase(&mut self) {
        if self.state.terminal.is_some() {
            return;
        }
        let node = NodeAddresses {
            host_ip: self.node.host_ip().to_string(),
        };
        let mut probe = self.state.clone();
        let status = status::generate(&mut probe, &node, Timestamp::now());
        let phase = status.phase.unwrap_or_default();
        if (phase == "Succeeded" || phase == "Failed") && self.all_stopped() {
            self.finish(&phase, None, None);
        }
    }

    fn finish(&mut self, phase: &str, reason: Option<&str>, message: Option<&str>) {
        tracing::info!(phase, "pod finished");
        self.state.terminal = Some(Terminal {
            phase: phase.to_string(),
            reason: reason.map(str::to_string),
            message: message.map(str::to_string),
        });
    }

    fn all_stopped(&self) -> bool {
        self.state
            .containers
            .values()
            .all(|r| r.running().is_none())
    }

    /// Stops every running container: app containers (and running init containers) first,
    /// all at once; then sidecars one at a time in reverse order (reference §2.6).
    async fn kill_pod(&mut self, grace_seconds: i64, verb: &str) {
        let grace = Duration::from_secs(grace_seconds.max(0) as u64);
        let deadline = tokio::time::Instant::now() + grace;
        let all = plan::containers(&self.state.pod);
        let (sidecars, others): (Vec<ContainerRef>, Vec<ContainerRef>) = all
            .into_iter()
            .partition(|c| c.kind == ContainerKind::Sidecar);

        let mut stops = Vec::new();
        for c in &others {
            if let Some(i) = self.state.record(&c.name).and_then(|r| r.running()) {
                let msg = format!("{verb} {}", c.name);
                emit(
                    &self.node,
                    &self.state.pod,
                    EventType::Normal,
                    Reason::Killing,
                    msg,
                    Some(c.field_path()),
                );
                let runtime = self.node.runtime.clone();
                let id = i.id.clone();
                stops.push(tokio::spawn(async move { runtime.stop(&id, grace).await }));
            }
        }
        for stop in stops {
            let _ = stop.await;
        }
        for c in sidecars.iter().rev() {
            if let Some(i) = self.state.record(&c.name).and_then(|r| r.running()) {
                let msg = format!("{verb} {}", c.name);
                emit(
                    &self.node,
                    &self.state.pod,
                    EventType::Normal,
                    Reason::Killing,
                    msg,
                    Some(c.field_path()),
                );
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let _ = self.node.runtime.stop(&i.id, left.max(MIN_GRACE)).await;
            }
        }
        self.refresh();
        // Containers that never started are not started any more.
        for rec in self.state.containers.values_mut() {
            if rec
                .waiting
                .as_ref()
                .is_some_and(|w| w.reason == "CrashLoopBackOff")
            {
                rec.waiting = None;
            }
        }
    }

    /// Removes the pod from the node: sandbox, volumes, state.
    async fn remove(mut self) {
        // Exited containers are removed when their exit is recorded; one whose removal a
        // killed coracle never got to goes now.
        let recorded = self.state.containers.values();
        for instance in recorded.flat_map(|r| r.current.iter().chain(r.previous.iter())) {
            if self.node.runtime.container_dir(&instance.id).exists() {
                if let Err(err) = self.node.runtime.remove(&instance.id) {
                    tracing::warn!(container = %instance.id, "container removal: {err}");
                }
            }
        }
        if let Some(record) = self.state.sandbox.take() {
            crate::sandbox::remove(&self.node, &self.state.pod, &record).await;
        }
        if let Err(err) = volumes::teardown_volumes(&self.dir) {
            tracing::warn!("volume teardown: {err}");
        }
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "removing pod directory: {err}");
        }
        tracing::info!("pod removed");
        self.node.observer.removed(&self.state.pod);
    }

    /// Saves the state and publishes the status when it changed.
    fn save_and_publish(&mut self) {
        let node = NodeAddresses {
            host_ip: self.node.host_ip().to_string(),
        };
        let status = status::generate(&mut self.state, &node, Timestamp::now());
        if let Err(err) = self.state.save(&self.dir) {
            tracing::error!("saving pod state: {err}");
        }
        if self.published.as_ref() != Some(&status) {
            let mut pod: Pod = self.state.pod.clone();
            pod.status = Some(status.clone());
            self.node.observer.status(&pod);
            self.published = Some(status);
        }
    }
}

fn min_wake(current: Option<Duration>, d: Duration) -> Option<Duration> {
    Some(current.map_or(d, |c| c.min(d)))
}

/// The instance after its exit, with upstream's reason and termination message.
fn exited_instance(
    running: &Instance,
    status: &coracle_runtime::ContainerStatus,
    message_policy: Option<String>,
) -> Instance {
    let mut exited = running.clone();
    let exit = status.exit().expect("called for exited containers");
    exited.started_at = exited
        .started_at
        .or(Some(crate::state::timestamp(exit.started_at)));
    exited.finished_at = Some(crate::state::timestamp(exit.finished_at));
    exited.exit_code = Some(exit.exit_code);
    exited.signal = None;
    exited.reason = Some(
        if exit.oom_killed {
            "OOMKilled"
        } else if exit.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
        .to_string(),
    );
    exited.message = termination_message(running, exit.exit_code, message_policy.as_deref());
    exited
}

/// The termination message: the file the container wrote, or with `FallbackToLogsOnError` the
/// tail of its log when it failed without writing one (upstream: 80 lines, 2048 bytes).
fn termination_message(
    instance: &Instance,
    exit_code: i32,
    policy: Option<&str>,
) -> Option<String> {
    let file = instance.termination_log.clone();
    let written = file
        .and_then(|f| std::fs::read(f).ok())
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).to_string())
        .filter(|s| !s.is_empty());
    if written.is_some() {
        return written;
    }
    if policy == Some("FallbackToLogsOnError") && exit_code != 0 {
        let lines: Vec<String> = coracle_runtime::logs::read_log(&instance.log_path)
            .ok()?
            .map(|l| String::from_utf8_lossy(&l.text).to_string())
            .collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        let start = tail.len().saturating_sub(2048);
        let start = (start..tail.len())
            .find(|&i| tail.is_char_boundary(i))
            .unwrap_or(0);
        return Some(tail[start..].to_string()).filter(|s| !s.is_empty());
    }
    None
}
