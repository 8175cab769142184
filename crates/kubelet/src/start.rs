//! Starting one container instance, as upstream's `startContainer` does: image (pull by the
//! pull policy, with its own back-off), configuration (environment and mounts), create, start.
//!
//! A failure before the container exists (image, configuration) leaves no instance: the
//! container waits with the kubelet's reason (`ErrImagePull`, `ImagePullBackOff`,
//! `CreateContainerConfigError`, …) and the pod stays `Pending` under any restart policy. A
//! failure of the runtime to start the process leaves an instance that terminated with
//! `StartError`, exit code 128 and the runtime's own message, as containerd reports it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coracle_image::Image;
use coracle_runtime::{ContainerConfig, Mount, Propagation};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::backoff::{self, go_duration};
use crate::events::{EventType, PodEvent, Reason};
use crate::node::Node;
use crate::plan::{ContainerKind, ContainerRef};
use crate::state::{Instance, PodState, Waiting};
use crate::volumes::PodVolumes;

/// What came of an attempt to start a container.
#[derive(Debug)]
pub enum Outcome {
    /// The container runs.
    Started,
    /// The runtime could not start it; an instance terminated with `StartError`.
    StartFailed,
    /// Held back before it existed (image or configuration); try again after the duration.
    Held(Duration),
}

/// Emits an event about `pod`.
pub fn emit(
    node: &Node,
    pod: &Pod,
    type_: EventType,
    reason: Reason,
    message: String,
    field_path: Option<String>,
) {
    tracing::debug!(
        pod = pod.metadata.name.as_deref(),
        reason = reason.as_str(),
        "{message}"
    );
    let event = PodEvent {
        type_,
        reason,
        message,
        field_path,
        source: if reason == Reason::Scheduled {
            "default-scheduler"
        } else {
            "kubelet"
        },
        time: Timestamp::now(),
    };
    node.observer.event(pod, &event);
}

/// Starts a new instance of `c`.
pub async fn start(
    node: &Node,
    state: &mut PodState,
    pod_dir: &Path,
    volumes: &PodVolumes,
    c: &ContainerRef,
) -> Outcome {
    let container = c.spec(&state.pod).clone();
    let image = match ensure_image(node, state, c, &container).await {
        Ok(image) => image,
        Err(wait) => return Outcome::Held(wait),
    };

    // Environment and mounts: a missing ConfigMap or key holds the container back.
    let pod = pod_with_addresses(state);
    let config = match configure(node, &pod, &container, volumes) {
        Ok(config) => config,
        Err(message) => {
            let retry = node.config.backoff.initial;
            let waiting = Waiting {
                reason: "CreateContainerConfigError".into(),
                message: Some(message.clone()),
            };
            if state.record(&c.name).and_then(|r| r.waiting.as_ref()) != Some(&waiting) {
                let msg = format!("Error: {message}");
                emit(
                    node,
                    &pod,
                    EventType::Warning,
                    Reason::Failed,
                    msg,
                    Some(c.field_path()),
                );
            }
            state.record_mut(&c.name).waiting = Some(waiting);
            return Outcome::Held(retry);
        }
    };
    let (env, mounts) = config;

    // A new instance: the previous exit moves to lastState, back-off moves on.
    let now = Timestamp::now();
    let sandbox = state
        .sandbox
        .clone()
        .expect("containers start inside a sandbox");
    let key = crate::plan::backoff_key(&state.pod, &container);
    let rec = state.record_mut(&c.name);
    let attempt = rec.attempts;
    rec.attempts += 1;
    rec.waiting = None;
    if let Some(exit) = rec.exited().and_then(|i| i.finished_at) {
        let entry = state.backoff.get(&key).copied();
        let next = backoff::next(&node.config.backoff, entry.as_ref(), exit, now);
        state.backoff.insert(key, next);
    }
    let rec = state.record_mut(&c.name);
    if rec.current.is_some() {
        rec.previous = rec.current.take();
    }

    let id = new_container_id();
    let log_path = pod_dir
        .join("logs")
        .join(&c.name)
        .join(format!("{attempt}.log"));
    let term_path = pod_dir
        .join("containers")
        .join(&c.name)
        .join(format!("{attempt}-termination-log"));
    let mut all_mounts = mounts;
    if let Err(err) = prepare_files(&log_path, &term_path) {
        tracing::warn!(container = %c.name, "preparing log files: {err}");
    }
    all_mounts.push(Mount {
        host_path: term_path.clone(),
        container_path: PathBuf::from(
            container
                .termination_message_path
                .as_deref()
                .unwrap_or("/dev/termination-log"),
        ),
        read_only: false,
        propagation: Propagation::None,
    });
    // The pod's /etc files, unless a volume already mounts over them.
    for m in crate::sandbox::etc_mounts(pod_dir) {
        if !all_mounts
            .iter()
            .any(|x| x.container_path == m.container_path)
        {
            all_mounts.push(m);
        }
    }

    let mut instance = Instance {
        id: id.clone(),
        sandbox_attempt: sandbox.attempt,
        image: image_name(&container),
        image_id: image_id(&image),
        log_path: log_path.clone(),
        started_at: None,
        finished_at: None,
        exit_code: None,
        signal: None,
        reason: None,
        message: None,
        termination_log: Some(term_path.clone()),
    };
    let uid = state.uid().to_string();
    let config = ContainerConfig {
        id: id.clone(),
        container: container.clone(),
        env,
        image_config: image.config.clone(),
        layers: image.layers.clone(),
        mounts: all_mounts,
        sandbox: Some(crate::sandbox::namespaces(&sandbox)),
        pod_security: state
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.clone()),
        hostname: Some(crate::sandbox::hostname(&state.pod)),
        cgroup_parent: format!("/coracle/pod-{uid}"),
        pids_limit: None,
        log_path,
    };

    let created = format!("Created container: {}", c.name);
    emit(
        node,
        &pod,
        EventType::Normal,
        Reason::Created,
        created,
        Some(c.field_path()),
    );
    // Write ahead: the instance is on disk before the runtime creates it, so a coracle
    // killed during the start finds it on its next run and adopts the container instead of
    // starting a second one (upstream's kubelet finds such containers through the runtime).
    state.record_mut(&c.name).current = Some(instance.clone());
    if let Err(err) = state.save(pod_dir) {
        tracing::warn!(container = %c.name, "cannot record the new instance: {err}");
    }
    let outcome = match node.runtime.start(config).await {
        Ok(status) => {
            instance.started_at = Some(match status {
                coracle_runtime::ContainerStatus::Running { started_at, .. } => {
                    crate::state::timestamp(started_at)
                }
                _ => Timestamp::now(),
            });
            let started = format!("Started container {}", c.name);
            emit(
                node,
                &pod,
                EventType::Normal,
                Reason::Started,
                started,
                Some(c.field_path()),
            );
            tracing::info!(pod = pod.metadata.name.as_deref(), container = %c.name, "container started");
            Outcome::Started
        }
        Err(err) => {
            let message = start_error_message(&err);
            let now = Timestamp::now();
            instance.started_at = Some(now);
            instance.finished_at = Some(now);
            instance.exit_code = Some(128);
            instance.reason = Some("StartError".into());
            instance.message = Some(message.clone());
            let msg = format!("Error: {message}");
            emit(
                node,
                &pod,
                EventType::Warning,
                Reason::Failed,
                msg,
                Some(c.field_path()),
            );
            tracing::info!(pod = pod.metadata.name.as_deref(), container = %c.name, "container failed to start: {message}");
            let _ = node.runtime.remove(&id);
            Outcome::StartFailed
        }
    };
    state.record_mut(&c.name).current = Some(instance);
    let _ = c.kind == ContainerKind::App;
    outcome
}

/// The runtime's own message for a start failure, without coracle's wrapping.
fn start_error_message(err: &coracle_runtime::RuntimeError) -> String {
    match err {
        coracle_runtime::RuntimeError::StartFailed { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The pod with its addresses filled in, for the downward API and env.
fn pod_with_addresses(state: &PodState) -> Pod {
    let mut pod = state.pod.clone();
    let status = pod.status.get_or_insert_with(Default::default);
    if let Some(sandbox) = &state.sandbox {
        status.pod_ip = sandbox.ips.first().cloned();
        status.pod_ips = Some(
            sandbox
                .ips
                .iter()
                .map(|ip| k8s_openapi::api::core::v1::PodIP { ip: ip.clone() })
                .collect(),
        );
    }
    pod
}

type Config = (Vec<(String, String)>, Vec<Mount>);

/// Environment and volume mounts of `container`, or the message of a configuration error.
fn configure(
    node: &Node,
    pod: &Pod,
    container: &Container,
    volumes: &PodVolumes,
) -> Result<Config, String> {
    let mut info = node.info.clone();
    if info.host_ip.is_empty() {
        info.host_ip = "127.0.0.1".into();
    }
    let env = crate::env::resolve_env(pod, container, node.objects.as_ref(), &info)
        .map_err(|e| e.to_string())?;
    for warning in &env.warnings {
        tracing::warn!(pod = pod.metadata.name.as_deref(), "{warning}");
    }
    let mounts = crate::volumes::container_mounts(pod, container, volumes, &env.vars)
        .map_err(|e| e.to_string())?;
    let mounts = mounts
        .into_iter()
        .map(|m| Mount {
            host_path: m.host_path,
            container_path: PathBuf::from(m.container_path),
            read_only: m.read_only,
            propagation: match m.propagation {
                crate::volumes::Propagation::HostToContainer => Propagation::HostToContainer,
                crate::volumes::Propagation::Bidirectional => Propagation::Bidirectional,
                _ => Propagation::None,
            },
        })
        .collect();
    Ok((env.vars, mounts))
}

fn prepare_files(log: &Path, termination: &Path) -> std::io::Result<()> {
    for p in [log, termination] {
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
    }
    fs::write(termination, b"")?;
    fs::set_permissions(termination, fs::Permissions::from_mode(0o666))?;
    Ok(())
}

/// A fresh 64-hex container id, as containerd's.
fn new_container_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        if f.read_exact(buf).is_ok() {
            return;
        }
    }
    // /dev/urandom is always there on Linux; this is only a fallback.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8);
    }
}

/// The image as the runtime reports it.
fn image_name(container: &Container) -> String {
    crate::status::normalize_image(container.image.as_deref().unwrap_or_default())
}

/// The image's digest reference, `imageID`.
fn image_id(image: &Image) -> String {
    image
        .repo_digests
        .first()
        .cloned()
        .unwrap_or_else(|| image.id.clone())
}

/// The pull policy, defaulted as the API server does.
fn pull_policy(container: &Container) -> String {
    if let Some(p) = &container.image_pull_policy {
        return p.clone();
    }
    let image = container.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || (last.contains(':') && !last.ends_with(":latest")) {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

/// Makes the container's image present, by its pull policy, with upstream's events and
/// back-off. `Err` holds the container back for the returned duration.
async fn ensure_image(
    node: &Node,
    state: &mut PodState,
    c: &ContainerRef,
    container: &Container,
) -> Result<Image, Duration> {
    let name = container.image.clone().unwrap_or_default();
    let field = Some(c.field_path());
    let pod = state.pod.clone();
    let policy = &node.config.backoff;
    let key = format!("image_{}_{}", state.uid(), name);
    let now = Timestamp::now();

    // Still in the back-off of an earlier failed pull?
    let previous = state.record(&c.name).and_then(|r| r.waiting.clone());
    let failed_before = previous
        .as_ref()
        .is_some_and(|w| w.reason == "ErrImagePull" || w.reason == "ImagePullBackOff");
    if let (true, Some(entry)) = (failed_before, state.backoff.get(&key).copied()) {
        if let Some(left) = backoff::remaining(policy, Some(&entry), entry.last_update, now) {
            let detail = previous.and_then(|w| w.message).unwrap_or_default();
            let detail = detail
                .strip_prefix(&format!("Back-off pulling image {name:?}: ErrImagePull: "))
                .map(str::to_string)
                .unwrap_or(detail);
            let waiting = Waiting {
                reason: "ImagePullBackOff".into(),
                message: Some(format!(
                    "Back-off pulling image {name:?}: ErrImagePull: {detail}"
                )),
            };
            if state
                .record(&c.name)
                .and_then(|r| r.waiting.as_ref())
                .map(|w| &w.reason)
                != Some(&waiting.reason)
            {
                let msg = format!("Back-off pulling image {name:?}");
                emit(
                    node,
                    &pod,
                    EventType::Normal,
                    Reason::BackOff,
                    msg,
                    field.clone(),
                );
                let msg = "Error: ImagePullBackOff".to_string();
                emit(
                    node,
                    &pod,
                    EventType::Warning,
                    Reason::Failed,
                    msg,
                    field.clone(),
                );
            }
            state.record_mut(&c.name).waiting = Some(waiting);
            return Err(left);
        }
    }

    let pull_policy = pull_policy(container);
    if coracle_image::normalize_reference(&name).is_err() {
        {
            let msg = format!(
                "Failed to apply default image tag {name:?}: couldn't parse image name {name:?}: invalid reference format"
            );
            emit(
                node,
                &pod,
                EventType::Warning,
                Reason::InspectFailed,
                msg.clone(),
                field.clone(),
            );
            state.record_mut(&c.name).waiting = Some(Waiting {
                reason: "InvalidImageName".into(),
                message: Some(msg),
            });
            return Err(policy.initial);
        }
    }
    let present = match node.images.get(&name) {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(image = %name, "image store: {err}");
            None
        }
    };
    match (pull_policy.as_str(), present) {
        ("Never", None) => {
            let msg = format!("Container image {name:?} is not present with pull policy of Never");
            emit(
                node,
                &pod,
                EventType::Warning,
                Reason::ErrImageNeverPull,
                msg.clone(),
                field.clone(),
            );
            emit(
                node,
                &pod,
                EventType::Warning,
                Reason::Failed,
                "Error: ErrImageNeverPull".into(),
                field,
            );
            state.record_mut(&c.name).waiting = Some(Waiting {
                reason: "ErrImageNeverPull".into(),
                message: Some(msg),
            });
            Err(policy.initial)
        }
        ("Never" | "IfNotPresent", Some(image)) => {
            let msg = format!("Container image {name:?} already present on machine");
            emit(node, &pod, EventType::Normal, Reason::Pulled, msg, field);
            Ok(image)
        }
        _ => pull(node, state, c, &name, &key).await,
    }
}

async fn pull(
    node: &Node,
    state: &mut PodState,
    c: &ContainerRef,
    name: &str,
    key: &str,
) -> Result<Image, Duration> {
    let pod = state.pod.clone();
    let field = Some(c.field_path());
    let msg = format!("Pulling image {name:?}");
    emit(
        node,
        &pod,
        EventType::Normal,
        Reason::Pulling,
        msg,
        field.clone(),
    );

    let started = Instant::now();
    let progress = |_p: coracle_image::PullProgress| {};
    match node
        .images
        .pull(name, &node.config.registries, &progress)
        .await
    {
        Ok(image) => {
            let took = go_duration_precise(started.elapsed());
            let msg = format!(
                "Successfully pulled image {name:?} in {took} ({took} including waiting). Image size: {} bytes.",
                image.size
            );
            emit(node, &pod, EventType::Normal, Reason::Pulled, msg, field);
            state.backoff.remove(key);
            Ok(image)
        }
        Err(err) => {
            let detail = err.to_string();
            let msg = format!("Failed to pull image {name:?}: {detail}");
            emit(
                node,
                &pod,
                EventType::Warning,
                Reason::Failed,
                msg,
                field.clone(),
            );
            emit(
                node,
                &pod,
                EventType::Warning,
                Reason::Failed,
                "Error: ErrImagePull".into(),
                field,
            );
            let now = Timestamp::now();
            let entry = state.backoff.get(key).copied();
            let next = backoff::next(&node.config.backoff, entry.as_ref(), now, now);
            state.backoff.insert(key.to_string(), next);
            state.record_mut(&c.name).waiting = Some(Waiting {
                reason: "ErrImagePull".into(),
                message: Some(detail),
            });
            // Upstream's pod worker retries a failed sync after its fixed back-off period
            // (the initial delay), not when the pull back-off ends: a retry that finds the
            // entry still running shows `ImagePullBackOff` in between.
            Err(node.config.backoff.initial)
        }
    }
}

/// Go's duration formatting down to milliseconds (`521ms`, `1.234s`).
fn go_duration_precise(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        go_duration(Duration::from_millis(d.as_millis() as u64))
    }
}
