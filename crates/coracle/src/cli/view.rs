//! What `coracle run` shows while pods run.
//!
//! On a terminal: a live table redrawn in place, a line per pod (its `kubectl get pods`
//! STATUS) and per container (state, elapsed time, restart count, the back-off countdown and
//! the last log line of a failing container). Elsewhere: a plain line for every change of a
//! pod's STATUS or a container's state, and every Warning event. `--logs` streams container
//! output prefixed with `pod/container`.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coracle_kubelet::{EventType, PodEvent, PodObserver};
use coracle_runtime::LogFollower;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tokio::sync::Notify;

/// How the view behaves.
pub struct ViewOptions {
    /// Stream container logs.
    pub logs: bool,
    /// coracle's data directory, where pod logs are.
    pub data_dir: PathBuf,
}

#[derive(Default)]
struct Shared {
    /// Pods by uid, in the order they were tracked.
    pods: BTreeMap<usize, (String, Pod)>,
    /// Last printed line per pod or container, for plain output.
    printed: HashMap<String, String>,
    /// Lines of the live table currently on screen.
    drawn: usize,
    /// Log followers by file.
    followers: HashMap<PathBuf, LogFollower>,
}

/// The view; also the kubelet's observer.
pub struct RunView {
    options: ViewOptions,
    tty: bool,
    shared: Mutex<Shared>,
    changed: Notify,
    live: AtomicBool,
}

impl RunView {
    /// A view for the current terminal (or not).
    pub fn new(options: ViewOptions) -> Self {
        RunView {
            options,
            tty: std::io::stdout().is_terminal(),
            shared: Mutex::new(Shared::default()),
            changed: Notify::new(),
            live: AtomicBool::new(true),
        }
    }

    /// Starts showing the pod with `uid`.
    pub fn track(&self, uid: &str, pod: &Pod) {
        let mut shared = self.shared.lock().unwrap();
        if shared.pods.values().any(|(u, _)| u == uid) {
            return;
        }
        let n = shared.pods.len();
        shared.pods.insert(n, (uid.to_string(), pod.clone()));
    }

    /// Waits until every tracked pod is `Succeeded` or `Failed`; returns the failures.
    pub async fn wait_all_terminal(self: &Arc<Self>) -> Vec<String> {
        let ticker = self.clone();
        let tick = tokio::spawn(async move {
            loop {
                ticker.refresh();
                tokio::time::sleep(Duration::from_millis(if ticker.tty { 250 } else { 100 })).await;
            }
        });
        loop {
            let notified = self.changed.notified();
            if let Some(failures) = self.all_terminal() {
                tick.abort();
                self.refresh();
                return failures;
            }
            notified.await;
        }
    }

    fn all_terminal(&self) -> Option<Vec<String>> {
        let shared = self.shared.lock().unwrap();
        let mut failures = Vec::new();
        for (_, pod) in shared.pods.values() {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            match phase {
                Some("Succeeded") => {}
                Some("Failed") => failures.push(failure(pod, &self.options.data_dir)),
                _ => return None,
            }
        }
        Some(failures)
    }

    /// Stops redrawing the live table (it stays on screen as it was last drawn).
    pub fn stop_live(&self) {
        self.refresh();
        self.live.store(false, Ordering::SeqCst);
    }

    /// Prints whatever log lines are still unread.
    pub fn flush_logs(&self) {
        if self.options.logs {
            let mut shared = self.shared.lock().unwrap();
            self.pump_logs(&mut shared);
        }
    }

    /// Redraws (terminal) or prints changes (plain), and pumps logs.
    fn refresh(&self) {
        let mut shared = self.shared.lock().unwrap();
        let live = self.live.load(Ordering::SeqCst);
        if self.tty && live {
            self.clear(&mut shared);
        }
        if self.options.logs {
            self.pump_logs(&mut shared);
        }
        if !live {
            return;
        }
        if self.tty {
            let lines = table(&shared, &self.options.data_dir);
            let mut out = std::io::stdout().lock();
            for line in &lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
            shared.drawn = lines.len();
        } else {
            self.print_changes(&mut shared);
        }
    }

    fn clear(&self, shared: &mut Shared) {
        if shared.drawn > 0 {
            // Flushed at once: a warning written to stderr next must land below the cleared
            // lines, not be wiped when stdout's buffer goes out later.
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\x1b[{}A\x1b[J", shared.drawn);
            let _ = out.flush();
            shared.drawn = 0;
        }
    }

    fn pump_logs(&self, shared: &mut Shared) {
        let mut paths = Vec::new();
        for (uid, pod) in shared.pods.values() {
            let name = pod.metadata.name.clone().unwrap_or_default();
            for c in container_statuses(pod) {
                if c.container_id.is_none() {
                    continue;
                }
                for attempt in 0..=c.restart_count.max(0) {
                    let path = self
                        .options
                        .data_dir
                        .join("pods")
                        .join(uid)
                        .join("logs")
                        .join(&c.name)
                        .join(format!("{attempt}.log"));
                    paths.push((format!("{name}/{}", c.name), path));
                }
            }
        }
        let mut out = std::io::stdout().lock();
        for (label, path) in paths {
            if !shared.followers.contains_key(&path) {
                match LogFollower::open(&path) {
                    Ok(f) => {
                        shared.followers.insert(path.clone(), f);
                    }
                    Err(_) => continue,
                }
            }
            let follower = shared.followers.get_mut(&path).expect("inserted above");
            for line in follower.read_new().unwrap_or_default() {
                let text = String::from_utf8_lossy(&line.text);
                if self.tty {
                    let _ = writeln!(out, "\x1b[2m[{label}]\x1b[0m {text}");
                } else {
                    let _ = writeln!(out, "[{label}] {text}");
                }
            }
        }
    }

    fn print_changes(&self, shared: &mut Shared) {
        let mut lines = Vec::new();
        for (_, pod) in shared.pods.values() {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let cols = coracle_api::printer::pod_status_columns(pod, Timestamp::now());
            let status = if cols.status.is_empty() {
                "Pending".into()
            } else {
                cols.status
            };
            lines.push((name.clone(), format!("{name}: {status}")));
            for c in container_statuses(pod) {
                let key = format!("{name}/{}", c.name);
                let text = format!("{key}: {}", state_text(&c, false));
                lines.push((key, text));
            }
        }
        let mut out = std::io::stdout().lock();
        for (key, text) in lines {
            if shared.printed.get(&key) != Some(&text) {
                let _ = writeln!(out, "{text}");
                shared.printed.insert(key, text);
            }
        }
    }
}

impl PodObserver for RunView {
    fn status(&self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        {
            let mut shared = self.shared.lock().unwrap();
            if let Some(entry) = shared.pods.values_mut().find(|(u, _)| *u == uid) {
                entry.1 = pod.clone();
            }
        }
        // Plain lines are a log: print every change now, before a later status replaces it.
        if !self.tty {
            self.refresh();
        }
        self.changed.notify_waiters();
    }

    fn event(&self, pod: &Pod, event: &PodEvent) {
        tracing::debug!(
            pod = pod.metadata.name.as_deref(),
            reason = event.reason.as_str(),
            "{}",
            event.message
        );
        if event.type_ == EventType::Warning {
            let mut shared = self.shared.lock().unwrap();
            if self.tty && self.live.load(Ordering::SeqCst) {
                self.clear(&mut shared);
            }
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let what = event
                .field_path
                .as_deref()
                .map(container_of)
                .unwrap_or_default();
            let text = format!("{name}{what}: {} {}", event.reason.as_str(), event.message);
            if std::io::stderr().is_terminal() {
                eprintln!("\x1b[33m{text}\x1b[0m");
            } else {
                eprintln!("{text}");
            }
        }
    }
}

/// `spec.initContainers{x}` → `/x`.
fn container_of(field_path: &str) -> String {
    field_path
        .split_once('{')
        .map(|(_, rest)| format!("/{}", rest.trim_end_matches('}')))
        .unwrap_or_default()
}

/// Init statuses (marked) then app statuses.
fn container_statuses(pod: &Pod) -> Vec<ContainerStatus> {
    let status = pod.status.clone().unwrap_or_default();
    let mut all = status.init_container_statuses.unwrap_or_default();
    all.extend(status.container_statuses.unwrap_or_default());
    all
}

fn is_init(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|v| v.iter().any(|c| c.name == name))
}

/// A container's state in words, with the back-off countdown.
fn state_text(c: &ContainerStatus, countdown: bool) -> String {
    let state = c.state.clone().unwrap_or_default();
    if let Some(w) = state.waiting {
        let reason = w.reason.unwrap_or_default();
        if countdown && reason == "CrashLoopBackOff" {
            if let Some(left) = backoff_left(c, w.message.as_deref().unwrap_or_default()) {
                return format!("{reason} (restart in {left}s)");
            }
        }
        if reason == "ErrImagePull" || reason == "CreateContainerConfigError" {
            if let Some(m) = w.message {
                return format!("{reason}: {m}");
            }
        }
        return reason;
    }
    if state.running.is_some() {
        return "Running".into();
    }
    if let Some(t) = state.terminated {
        let reason = t.reason.unwrap_or_else(|| "Terminated".into());
        return match (t.exit_code, t.message) {
            (0, _) => reason,
            (code, Some(m)) if reason == "StartError" => format!("{reason} (exit {code}): {m}"),
            (code, _) => format!("{reason} (exit {code})"),
        };
    }
    "Waiting".into()
}

/// Seconds left of a crash back-off: `back-off 20s …` after the last exit.
fn backoff_left(c: &ContainerStatus, message: &str) -> Option<i64> {
    let delay = message
        .strip_prefix("back-off ")?
        .split_whitespace()
        .next()?;
    let delay = super::run::parse_duration(delay).ok()?;
    let finished = c
        .last_state
        .as_ref()?
        .terminated
        .as_ref()?
        .finished_at
        .as_ref()?
        .0;
    let end = finished
        .checked_add(jiff::SignedDuration::try_from(delay).ok()?)
        .ok()?;
    Some(Timestamp::now().duration_until(end).as_secs().max(0))
}

fn elapsed(c: &ContainerStatus) -> String {
    let state = c.state.clone().unwrap_or_default();
    let (from, to) = if let Some(r) = state.running {
        (r.started_at.map(|t| t.0), Timestamp::now())
    } else if let Some(t) = state.terminated {
        (
            t.started_at.map(|t| t.0),
            t.finished_at.map_or_else(Timestamp::now, |t| t.0),
        )
    } else {
        (None, Timestamp::now())
    };
    match from {
        Some(from) => {
            let d = from.duration_until(to);
            if d.as_secs() < 10 {
                format!("{:.1}s", d.as_secs_f64().max(0.0))
            } else {
                coracle_api::printer::human_duration(d)
            }
        }
        None => String::new(),
    }
}

/// The last line a container wrote, for a failing container.
fn last_log_line(data_dir: &std::path::Path, uid: &str, c: &ContainerStatus) -> Option<String> {
    let attempt = c.restart_count.max(0);
    // A container waiting in back-off shows the log of its last run.
    let state = c.state.clone().unwrap_or_default();
    let attempt = if state.waiting.is_some() {
        attempt - 1
    } else {
        attempt
    };
    if attempt < 0 {
        return None;
    }
    let path = data_dir
        .join("pods")
        .join(uid)
        .join("logs")
        .join(&c.name)
        .join(format!("{attempt}.log"));
    let last = coracle_runtime::read_log(&path).ok()?.last()?;
    Some(String::from_utf8_lossy(&last.text).to_string())
}

fn failing(c: &ContainerStatus) -> bool {
    let state = c.state.clone().unwrap_or_default();
    let terminated_badly = state.terminated.as_ref().is_some_and(|t| t.exit_code != 0);
    let backing_off = state
        .waiting
        .as_ref()
        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
    terminated_badly || backing_off
}

/// The live table.
fn table(shared: &Shared, data_dir: &std::path::Path) -> Vec<String> {
    let now = Timestamp::now();
    let mut rows = vec![[
        "POD".to_string(),
        "CONTAINER".into(),
        "STATE".into(),
        "RESTARTS".into(),
        "TIME".into(),
    ]];
    let mut extra: HashMap<usize, String> = HashMap::new();
    for (uid, pod) in shared.pods.values() {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let cols = coracle_api::printer::pod_status_columns(pod, now);
        let age = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| coracle_api::printer::human_duration(t.0.duration_until(now)))
            .unwrap_or_default();
        rows.push([name, String::new(), cols.status, cols.restarts, age]);
        for c in container_statuses(pod) {
            let label = if is_init(pod, &c.name) {
                format!("{} (init)", c.name)
            } else {
                c.name.clone()
            };
            rows.push([
                String::new(),
                label,
                state_text(&c, true),
                c.restart_count.to_string(),
                elapsed(&c),
            ]);
            if failing(&c) {
                if let Some(line) = last_log_line(data_dir, uid, &c) {
                    extra.insert(rows.len() - 1, line);
                }
            }
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut lines = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        lines.push(line.trim_end().to_string());
        if let Some(log) = extra.get(&i) {
            let log: String = log.chars().take(100).collect();
            lines.push(format!("{:w0$}    └ last log: {log}", "", w0 = widths[0]));
        }
    }
    lines
}

/// Why a failed pod failed, in one line with the container's reason and last log line.
fn failure(pod: &Pod, data_dir: &std::path::Path) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    if let Some(reason) = status.reason {
        return format!(
            "pod {name:?} failed: {reason}: {}",
            status.message.unwrap_or_default()
        );
    }
    for c in container_statuses(pod) {
        let state = c.state.clone().unwrap_or_default();
        let Some(t) = state.terminated.filter(|t| t.exit_code != 0) else {
            continue;
        };
        let kind = if is_init(pod, &c.name) {
            "init container"
        } else {
            "container"
        };
        let mut line = format!(
            "pod {name:?} failed: {kind} {:?} {} (exit code {})",
            c.name,
            t.reason.unwrap_or_else(|| "Error".into()),
            t.exit_code
        );
        if let Some(m) = t.message.filter(|m| !m.is_empty()) {
            line.push_str(&format!(": {}", m.trim_end()));
        } else if let Some(log) = last_log_line(data_dir, &uid, &c) {
            line.push_str(&format!("; last log line: {log}"));
        }
        return line;
    }
    format!("pod {name:?} failed")
}
