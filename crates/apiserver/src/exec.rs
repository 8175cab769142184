//! `pods/<name>/exec`: a command in a running container, streamed over a WebSocket with the
//! `v5.channel.k8s.io` (or `v4.channel.k8s.io`) subprotocol, as the kubelet serves it
//! (reference kubectl-wire.md §8).
//!
//! Before the upgrade the request is checked as kube-apiserver and the kubelet check it, and
//! refusals are `Status` objects with their messages. After it, every message is binary, its
//! first byte the channel: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status`, 4 terminal
//! resizes, 255 (v5 only) "this stream is closed". The process itself runs in the container
//! through the runtime's exec helper ([`coracle_runtime::exec`]).
//!
//! # Caveats
//!
//! Raw SPDY/3.1 upgrades (kubectl's fallback, older clients) are served by [`exec_spdy`].
//! A process that leaves children holding its stdout open gets its output
//! cut two seconds after it exits.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use bytes::Bytes;
use coracle_kubelet::state::PodState;
use coracle_runtime::{ContainerRuntime, ExecRequest, ExecSession, RuntimeError};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::exec_spdy;
use crate::logs::pick_container;
use crate::meta;
use crate::query::percent_decode;
use crate::state::ApiState;
use crate::status_error::ApiError;

/// The subprotocols served, preferred first.
pub(crate) const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// How long output is still forwarded after the process exited.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// The stream channels.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The query of an exec request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOptions {
    /// `command`, repeated.
    pub command: Vec<String>,
    /// `container`.
    pub container: Option<String>,
    /// `stdin`.
    pub stdin: bool,
    /// `stdout`.
    pub stdout: bool,
    /// `stderr`.
    pub stderr: bool,
    /// `tty`.
    pub tty: bool,
}

impl ExecOptions {
    /// Parses the raw query, keeping every `command` in order.
    pub fn parse(raw: Option<&str>) -> ExecOptions {
        let mut opts = ExecOptions::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (percent_decode(k), percent_decode(v));
            let flag = matches!(v.as_str(), "true" | "1" | "True");
            match k.as_str() {
                "command" => opts.command.push(v),
                "container" if !v.is_empty() => opts.container = Some(v),
                "stdin" => opts.stdin = flag,
                "stdout" => opts.stdout = flag,
                "stderr" => opts.stderr = flag,
                "tty" => opts.tty = flag,
                _ => {}
            }
        }
        opts
    }

    /// The kubelet's checks of the options (`remotecommand.NewOptions`).
    fn validate(&self) -> Result<(), ApiError> {
        if !self.stdin && !self.stdout && !self.stderr {
            return Err(ApiError::BadRequest(
                "you must specify at least 1 of stdin, stdout, stderr".into(),
            ));
        }
        if self.command.is_empty() {
            return Err(ApiError::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        Ok(())
    }
}

/// Serves `GET pods/<name>/exec` in namespace `ns`.
pub async fn serve(
    state: Arc<ApiState>,
    ns: &str,
    name: &str,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let opts = ExecOptions::parse(parts.uri.query());
    let (runtime, id) = locate(&state, ns, name, &opts)?;
    opts.validate()?;
    if exec_spdy::is_spdy(&parts.headers) {
        tracing::info!(pod = %name, container = %id, command = ?opts.command, "exec (SPDY)");
        return exec_spdy::upgrade(parts, runtime, id, opts);
    }

    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|rejection| {
            // Neither WebSocket nor SPDY: upstream's answer to a plain request.
            tracing::debug!("exec without an upgrade: {rejection}");
            ApiError::BadRequest("Upgrade request required".into())
        })?
        .protocols(PROTOCOLS);
    let Some(protocol) = upgrade.selected_protocol().cloned() else {
        return Err(ApiError::BadRequest(format!(
            "unable to upgrade connection: none of the requested subprotocols is served ({})",
            PROTOCOLS.join(", ")
        )));
    };
    let v5 = protocol == PROTOCOLS[0];
    tracing::info!(pod = %name, container = %id, command = ?opts.command, "exec");
    Ok(upgrade.on_upgrade(move |socket| session(socket, runtime, id, opts, v5)))
}

/// The runtime and container id the request means, with upstream's refusals.
fn locate(
    state: &ApiState,
    ns: &str,
    name: &str,
    opts: &ExecOptions,
) -> Result<(ContainerRuntime, String), ApiError> {
    let pod = state.pod(ns, name)?;
    let container = pick_container(&pod, name, opts.container.as_deref())?;
    if meta::meta_str(&pod, "uid").is_none() || node_name(&pod).is_none() {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }

    // The kubelet's `findContainer`: only a running instance can be exec'd into.
    let not_found = || ApiError::BadRequest(format!("container not found ({container:?})"));
    let runtime = state.runtime.clone().ok_or_else(not_found)?;
    let uid = meta::meta_str(&pod, "uid").unwrap_or_default();
    let pod_state = PodState::load(&state.data_dir.join("pods").join(uid)).ok();
    let instance = pod_state
        .as_ref()
        .and_then(|s| s.containers.get(&container))
        .and_then(|r| r.running())
        .ok_or_else(not_found)?;
    Ok((runtime, instance.id.clone()))
}

fn node_name(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// One upgraded exec: runs the process, streams it, ends with the Status on channel 3.
async fn session(
    socket: WebSocket,
    runtime: ContainerRuntime,
    id: String,
    opts: ExecOptions,
    v5: bool,
) {
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    // kubectl sends the terminal's size first; the process should start with it.
    let mut early = Vec::new();
    let size = match opts.tty {
        true => first_resize(&mut incoming, &mut early).await,
        false => None,
    };
    let request = ExecRequest {
        command: opts.command.clone(),
        tty: opts.tty,
        stdin: opts.stdin,
        size,
    };
    let status = match runtime.exec(&id, &request).await {
        Ok(process) => {
            let mut incoming = futures::stream::iter(early).chain(&mut incoming);
            stream(process, &mut incoming, &tx, &opts, v5).await
        }
        Err(err) => Some(start_failure(&err)),
    };

    // A client that went away gets no status; otherwise status, then a normal close.
    if let Some(status) = status {
        let _ = tx
            .send(frame(
                ERROR,
                &serde_json::to_vec(&status).unwrap_or_default(),
            ))
            .await;
        let _ = tx
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
        // Read until the client's close answers ours.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(message)) = incoming.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    drop(tx);
    let _ = writer.await;
}

/// Waits up to a second for the client's first resize; other messages are kept in `early`.
async fn first_resize(
    incoming: &mut futures::stream::SplitStream<WebSocket>,
    early: &mut Vec<Result<Message, axum::Error>>,
) -> Option<(u16, u16)> {
    let wait = async {
        loop {
            match incoming.next().await {
                Some(Ok(Message::Binary(data))) if data.first() == Some(&RESIZE) => {
                    return parse_resize(&data[1..]);
                }
                Some(message) => {
                    let closed = !matches!(message, Ok(Message::Binary(_) | Message::Ping(_)));
                    early.push(message);
                    if closed {
                        return None;
                    }
                }
                None => {
                    early.push(Ok(Message::Close(None)));
                    return None;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), wait)
        .await
        .ok()
        .flatten()
}

/// Forwards the streams until the process exits; `None` if the client went away first (the
/// process is then killed when the session drops).
async fn stream(
    process: ExecSession,
    incoming: &mut (impl futures::Stream<Item = Result<Message, axum::Error>> + Unpin),
    tx: &mpsc::Sender<Message>,
    opts: &ExecOptions,
    v5: bool,
) -> Option<Value> {
    let ExecSession {
        stdin,
        stdout,
        stderr,
        mut resizer,
        exit,
    } = process;
    let stdout = tokio::spawn(pump(stdout, STDOUT, opts.stdout, tx.clone()));
    let stderr = tokio::spawn(pump(stderr, STDERR, opts.stderr && !opts.tty, tx.clone()));

    // Stdin has a task of its own, so a process that does not read cannot stall the rest.
    let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(16);
    let mut stdin_tx = Some(stdin_tx);
    if let Some(mut stdin) = stdin {
        tokio::spawn(async move {
            while let Some(data) = stdin_rx.recv().await {
                if stdin.write_all(&data).await.is_err() {
                    break;
                }
            }
        });
    }

    let exit = exit.wait();
    tokio::pin!(exit);
    let code = loop {
        tokio::select! {
            code = &mut exit => break code,
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(&STDIN) => {
                        if let Some(sender) = &stdin_tx {
                            if sender.send(data.slice(1..)).await.is_err() {
                                stdin_tx = None;
                            }
                        }
                    }
                    Some(&RESIZE) => {
                        if let Some((width, height)) = parse_resize(&data[1..]) {
                            let _ = resizer.resize(width, height).await;
                        }
                    }
                    Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => stdin_tx = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    tracing::debug!("exec client went away");
                    stdout.abort();
                    stderr.abort();
                    return None;
                }
                Some(Ok(_)) => {}
            },
        }
    };
    drop(stdin_tx);

    // Output written just before the exit is still in the pipes.
    for pump in [stdout, stderr] {
        let abort = pump.abort_handle();
        if tokio::time::timeout(OUTPUT_DRAIN, pump).await.is_err() {
            abort.abort();
        }
    }
    Some(match code {
        Ok(code) => exit_status(&opts.command, code),
        Err(err) => start_failure(&err),
    })
}

/// Copies one output stream to its channel (or discards it when not asked for).
async fn pump(
    mut from: impl AsyncRead + Unpin,
    channel: u8,
    forward: bool,
    tx: mpsc::Sender<Message>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if forward && tx.send(frame(channel, &buf[..n])).await.is_err() {
            return;
        }
    }
}

fn frame(channel: u8, payload: &[u8]) -> Message {
    let mut data = Vec::with_capacity(payload.len() + 1);
    data.push(channel);
    data.extend_from_slice(payload);
    Message::Binary(data.into())
}

/// A resize message: `{"Width":100,"Height":30}`.
pub(crate) fn parse_resize(payload: &[u8]) -> Option<(u16, u16)> {
    let size: Value = serde_json::from_slice(payload).ok()?;
    let dim = |k: &str| size.get(k)?.as_u64().and_then(|v| u16::try_from(v).ok());
    Some((dim("Width")?, dim("Height")?))
}

/// The Status the kubelet sends for an exit code.
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status the kubelet sends when the process could not be run: an internal error carrying
/// the runtime's message.
pub(crate) fn start_failure(err: &RuntimeError) -> Value {
    let cause = match err {
        RuntimeError::ExecFailed { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let message = format!("error executing command in container: {cause}");
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parameter_is_kept_in_order() {
        let opts = ExecOptions::parse(Some(
            "command=sh&command=-c&command=echo+a%20b&container=main&stdin=true&stdout=true&tty=false",
        ));
        assert_eq!(opts.command, ["sh", "-c", "echo a b"]);
        assert_eq!(opts.container.as_deref(), Some("main"));
        assert!(opts.stdin && opts.stdout && !opts.stderr && !opts.tty);
    }

    #[test]
    fn options_need_a_stream_and_a_command() {
        let none = ExecOptions::parse(Some("command=ls"));
        assert_eq!(
            none.validate().unwrap_err().to_string(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(ExecOptions::parse(Some("stdout=true")).validate().is_err());
        assert!(ExecOptions::parse(Some("command=ls&stdout=1"))
            .validate()
            .is_ok());
    }

    #[test]
    fn a_non_zero_exit_is_the_kubelets_failure_status() {
        let command = ["sh".to_string(), "-c".into(), "exit 3".into()];
        assert_eq!(
            exit_status(&command, 3),
            json!({
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            })
        );
        assert_eq!(exit_status(&command, 0)["status"], "Success");
    }

    #[test]
    fn a_start_failure_carries_the_runtime_message() {
        let err = RuntimeError::ExecFailed {
            id: "c".into(),
            message: "exec: \"nosuch\": executable file not found in $PATH".into(),
        };
        assert_eq!(
            start_failure(&err)["message"],
            "Internal error occurred: error executing command in container: \
             exec: \"nosuch\": executable file not found in $PATH"
        );
    }

    #[test]
    fn resizes_are_read_from_kubectls_json() {
        assert_eq!(
            parse_resize(b"{\"Width\":100,\"Height\":30}\n"),
            Some((100, 30))
        );
        assert_eq!(parse_resize(b"{}"), None);
    }

    #[test]
    fn frames_start_with_their_channel() {
        let Message::Binary(data) = frame(STDOUT, b"hi") else {
            panic!("not binary")
        };
        assert_eq!(&data[..], b"\x01hi");
    }
}
