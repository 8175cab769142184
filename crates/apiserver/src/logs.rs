//! `GET pods/<name>/log`: the CRI log files of the pod's containers, as the kubelet serves
//! them, with `container`, `follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`,
//! `timestamps` and `limitBytes`.

use crate::state::stopped;
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use coracle_kubelet::state::PodState;
use coracle_runtime::logs::{read_log, LogFollower, LogLine};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::meta;
use crate::rest::Request;
use crate::status_error::ApiError;

struct Options {
    timestamps: bool,
    tail: Option<usize>,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
}

fn render(line: &LogLine, opts: &Options) -> Vec<u8> {
    let mut out = Vec::new();
    if opts.timestamps {
        out.extend_from_slice(
            line.time
                .to_rfc3339_opts(SecondsFormat::Nanos, true)
                .as_bytes(),
        );
        out.push(b' ');
    }
    out.extend_from_slice(&line.text);
    if !line.partial {
        out.push(b'\n');
    }
    out
}

/// Serves the log of one container of pod `name`.
pub async fn serve(req: &Request, name: &str) -> Result<Response, ApiError> {
    let (_, pod) = req.read(name)?;
    let container = pick_container(&pod, name, req.query.get("container"))?;
    let previous = req.query.flag("previous");
    let uid = meta::meta_str(&pod, "uid").unwrap_or("").to_owned();
    let state = PodState::load(&req.state.data_dir.join("pods").join(&uid)).ok();
    let record = state
        .as_ref()
        .and_then(|s| s.containers.get(&container).cloned());
    let instance = record.as_ref().and_then(|r| {
        if previous {
            r.previous.clone()
        } else {
            r.current.clone()
        }
    });
    let Some(instance) = instance else {
        let msg = if previous {
            format!("previous terminated container {container:?} in pod {name:?} not found")
        } else {
            not_started(
                &pod,
                name,
                &container,
                record.and_then(|r| r.waiting.map(|w| w.reason)),
            )
        };
        return Err(ApiError::BadRequest(msg));
    };
    let now = Utc::now();
    let since = match (req.query.int("sinceSeconds")?, req.query.get("sinceTime")) {
        (Some(s), _) => Some(now - chrono::Duration::seconds(s)),
        (None, Some(t)) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| ApiError::BadRequest(format!("invalid sinceTime {t:?}")))?
                .with_timezone(&Utc),
        ),
        _ => None,
    };
    let opts = Options {
        timestamps: req.query.flag("timestamps"),
        tail: req.query.int("tailLines")?.map(|n| n.max(0) as usize),
        since,
        limit: req.query.int("limitBytes")?.map(|n| n.max(0) as usize),
    };
    let follow = req.query.flag("follow") && !previous && instance.finished_at.is_none();
    let path = instance.log_path.clone();

    let lines: Vec<LogLine> = read_log(&path)
        .map(|it| {
            it.filter(|l| opts.since.is_none_or(|s| l.time >= s))
                .collect()
        })
        .unwrap_or_default();
    let skip = opts.tail.map_or(0, |t| lines.len().saturating_sub(t));
    let mut body = Vec::new();
    for line in &lines[skip..] {
        body.extend(render(line, &opts));
    }
    if let Some(limit) = opts.limit {
        body.truncate(limit);
    }
    if !follow {
        return Ok((
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "text/plain")],
            body,
        )
            .into_response());
    }

    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let pod_dir = req.state.data_dir.join("pods").join(&uid);
    let mut shutdown = req.state.shutdown.clone();
    tokio::spawn(async move {
        let mut sent = body.len();
        if tx.send(Bytes::from(body)).await.is_err() {
            return;
        }
        let Ok(mut follower) = LogFollower::open(&path) else {
            return;
        };
        let _ = follower.read_new();
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stopped(&mut shutdown) => return,
                _ = tx.closed() => return,
            }
            let mut chunk = Vec::new();
            for line in follower.read_new().unwrap_or_default() {
                chunk.extend(render(&line, &opts));
            }
            if let Some(limit) = opts.limit {
                chunk.truncate(limit.saturating_sub(sent));
            }
            sent += chunk.len();
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if opts.limit.is_some_and(|l| sent >= l) {
                return;
            }
            ticks += 1;
            if ticks.is_multiple_of(5) && !still_running(&pod_dir, &container, &path) {
                for line in follower.read_new().unwrap_or_default() {
                    let _ = tx.send(Bytes::from(render(&line, &opts))).await;
                }
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Whether the instance logging to `path` is still the running one.
fn still_running(pod_dir: &std::path::Path, container: &str, path: &PathBuf) -> bool {
    let Ok(state) = PodState::load(pod_dir) else {
        return false;
    };
    state
        .containers
        .get(container)
        .and_then(|r| r.running())
        .is_some_and(|i| &i.log_path == path)
}

/// The container the request means, with upstream's errors.
/// Why a container that never ran has no log, as the kubelet's `validateContainerLogStatus`
/// words it from the container's status in the pod (the kubelet's own record when the pod's
/// status does not have it yet).
fn not_started(pod: &Value, pod_name: &str, container: &str, recorded: Option<String>) -> String {
    let status = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|field| pod.pointer(&format!("/status/{field}"))?.as_array())
        .flatten()
        .find(|s| s["name"].as_str() == Some(container));
    let reason = status
        .and_then(|s| s.pointer("/state/waiting/reason"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(recorded);
    let prefix = format!("container {container:?} in pod {pod_name:?}");
    match reason.as_deref() {
        Some("ErrImagePull") => format!("{prefix} is waiting to start: image can't be pulled"),
        Some("ImagePullBackOff") => {
            format!("{prefix} is waiting to start: trying and failing to pull image")
        }
        Some(reason) => format!("{prefix} is waiting to start: {reason}"),
        None if status.is_none() => format!("{prefix} is not available"),
        None => format!("{prefix} is waiting to start - no logs yet"),
    }
}

pub(crate) fn pick_container(
    pod: &Value,
    pod_name: &str,
    wanted: Option<&str>,
) -> Result<String, ApiError> {
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let app = names("containers");
    let init = names("initContainers");
    match wanted.filter(|w| !w.is_empty()) {
        Some(w) if app.iter().chain(init.iter()).any(|n| n == w) => Ok(w.to_owned()),
        Some(w) => Err(ApiError::BadRequest(format!(
            "container {w} is not valid for pod {pod_name}"
        ))),
        None if app.len() == 1 => Ok(app[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                app.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::BadRequest(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::not_started;
    use serde_json::json;

    #[test]
    fn a_container_that_never_ran_says_what_it_waits_for_as_the_kubelet_does() {
        let pod = json!({"status": {
            "initContainerStatuses": [
                {"name": "init", "state": {"waiting": {"reason": "ErrImagePull"}}},
                {"name": "next", "state": {"waiting": {"reason": "PodInitializing"}}},
            ],
            "containerStatuses": [
                {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
                {"name": "odd", "state": {}},
            ],
        }});
        let message = |c: &str| not_started(&pod, "web", c, None);
        assert_eq!(
            message("init"),
            r#"container "init" in pod "web" is waiting to start: image can't be pulled"#
        );
        assert_eq!(
            message("next"),
            r#"container "next" in pod "web" is waiting to start: PodInitializing"#
        );
        assert_eq!(
            message("app"),
            r#"container "app" in pod "web" is waiting to start: trying and failing to pull image"#
        );
        assert_eq!(
            message("odd"),
            r#"container "odd" in pod "web" is waiting to start - no logs yet"#
        );
        assert_eq!(
            not_started(&json!({}), "web", "app", None),
            r#"container "app" in pod "web" is not available"#
        );
        assert_eq!(
            not_started(&json!({}), "web", "app", Some("ContainerCreating".into())),
            r#"container "app" in pod "web" is waiting to start: ContainerCreating"#
        );
    }
}
