//! exec over raw SPDY/3.1: kubectl's fallback when the WebSocket upgrade fails, and the only
//! protocol of older clients (client-go's `NewSPDYExecutor`).
//!
//! After the 101 the client opens one stream per channel, named by its `streamtype` header
//! (`error`, `stdin`, `stdout`, `stderr`, `resize`). Once every stream the options ask for is
//! open, the process starts; its output goes out as DATA frames that end with FIN, and the
//! final `Status` is written on the error stream, as the kubelet does. stdin ends with the
//! client's FIN on its stream; resizes arrive as JSON on the resize stream.
//!
//! # Caveats
//!
//! Only `v5.channel.k8s.io` and `v4.channel.k8s.io` are negotiated (older protocols carry the
//! error stream in another format). SPDY flow control is not enforced ([`spdy`]).

use std::time::Duration;

use axum::http::{header, request::Parts, HeaderMap};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use coracle_runtime::{ContainerRuntime, ExecRequest, ExecSession};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::exec::{exit_status, parse_resize, start_failure, ExecOptions, PROTOCOLS};
use crate::spdy::{self, Frame, FLAG_FIN};
use crate::status_error::ApiError;

/// How long the client has to open its streams (the kubelet's `streamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long output is still forwarded after the process exited.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);
/// How much is read into one DATA frame.
const CHUNK: usize = 32 * 1024;

/// Whether the request asks for a SPDY upgrade.
pub fn is_spdy(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// The protocol to speak: the first of ours the client offers, in our order.
fn negotiate(headers: &HeaderMap) -> Result<&'static str, ApiError> {
    let offered: Vec<&str> = headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    PROTOCOLS
        .into_iter()
        .find(|p| offered.contains(p))
        .ok_or_else(|| {
            ApiError::Forbidden(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, \
                 server supports {PROTOCOLS:?}"
            ))
        })
}

/// Answers the upgrade with 101 and runs the session on the upgraded connection.
pub fn upgrade(
    mut parts: Parts,
    runtime: ContainerRuntime,
    id: String,
    opts: ExecOptions,
) -> Result<Response, ApiError> {
    let protocol = negotiate(&parts.headers)?;
    crate::portforward::spdy_upgrade(&mut parts, protocol, "exec", move |io| {
        session(io, runtime, id, opts)
    })
}

/// The stream ids the client opened, by `streamtype`.
#[derive(Debug, Default)]
struct Streams {
    error: Option<u32>,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl Streams {
    /// Records a new stream; false for a type we do not know.
    fn open(&mut self, kind: &str, id: u32) -> bool {
        let slot = match kind {
            "error" => &mut self.error,
            "stdin" => &mut self.stdin,
            "stdout" => &mut self.stdout,
            "stderr" => &mut self.stderr,
            "resize" => &mut self.resize,
            _ => return false,
        };
        *slot = Some(id);
        true
    }

    /// Every stream the options ask for is open.
    fn complete(&self, opts: &ExecOptions) -> bool {
        self.error.is_some()
            && (!opts.stdin || self.stdin.is_some())
            && (!opts.stdout || self.stdout.is_some())
            && (!opts.stderr || opts.tty || self.stderr.is_some())
            && (!opts.tty || self.resize.is_some())
    }
}

/// What the frame loop hands the process task.
enum Input {
    Stdin(Bytes),
    StdinClosed,
    Resize(u16, u16),
}

async fn session<S>(io: S, runtime: ContainerRuntime, id: String, opts: ExecOptions)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(io);
    let (frames, outgoing) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(crate::portforward::write_frames(writer, outgoing));
    let mut decoder = spdy::Decoder::default();
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut streams = Streams::default();
    let mut inputs: Option<mpsc::Sender<Input>> = None;
    let mut process: Option<tokio::task::JoinHandle<()>> = None;
    let mut resize_buf = Vec::new();
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);
    // The kubelet closes the connection once the Status is written; so do we.
    let (done_tx, mut done) = mpsc::channel::<()>(1);

    'session: loop {
        let read = tokio::select! {
            read = reader.read_buf(&mut buf) => read,
            _ = &mut deadline, if process.is_none() => {
                tracing::debug!("exec streams were not all opened in time");
                break;
            }
            _ = done.recv() => break,
        };
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!("exec SPDY protocol error: {err}");
                    break 'session;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    let kind = spdy::header(&headers, "streamtype").unwrap_or("");
                    let reply = match streams.open(kind, stream_id) {
                        true => Frame::SynReply {
                            stream_id,
                            flags: 0,
                            headers: Vec::new(),
                        },
                        false => Frame::RstStream {
                            stream_id,
                            status: spdy::RST_REFUSED_STREAM,
                        },
                    };
                    if frames.send(reply).await.is_err() {
                        break 'session;
                    }
                    if process.is_none() && streams.complete(&opts) {
                        let (tx, rx) = mpsc::channel(16);
                        inputs = Some(tx);
                        let ids = Ids {
                            error: streams.error.unwrap_or(0),
                            stdout: streams.stdout.filter(|_| opts.stdout),
                            stderr: streams.stderr.filter(|_| opts.stderr && !opts.tty),
                        };
                        let task = run(
                            runtime.clone(),
                            id.clone(),
                            opts.clone(),
                            ids,
                            rx,
                            frames.clone(),
                        );
                        let done_tx = done_tx.clone();
                        process = Some(tokio::spawn(async move {
                            task.await;
                            let _ = done_tx.send(()).await;
                        }));
                    }
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    let Some(tx) = &inputs else { continue };
                    if Some(stream_id) == streams.stdin {
                        let _ = tx.send(Input::Stdin(data)).await;
                        if flags & FLAG_FIN != 0 {
                            let _ = tx.send(Input::StdinClosed).await;
                        }
                    } else if Some(stream_id) == streams.resize {
                        resize_buf.extend_from_slice(&data);
                        while let Some(at) = resize_buf.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = resize_buf.drain(..=at).collect();
                            if let Some((w, h)) = parse_resize(&line) {
                                let _ = tx.send(Input::Resize(w, h)).await;
                            }
                        }
                    }
                }
                Frame::RstStream { stream_id, .. } if Some(stream_id) == streams.stdin => {
                    if let Some(tx) = &inputs {
                        let _ = tx.send(Input::StdinClosed).await;
                    }
                }
                Frame::Ping { id } if frames.send(Frame::Ping { id }).await.is_err() => {
                    break 'session;
                }
                Frame::GoAway { .. } => break 'session,
                _ => {}
            }
        }
    }

    // The client is gone: the process is killed when its session drops.
    drop(inputs);
    if let Some(process) = process {
        process.abort();
    }
    drop(frames);
    let _ = writer.await;
}

/// The streams the process task writes to.
#[derive(Debug, Clone, Copy)]
struct Ids {
    error: u32,
    stdout: Option<u32>,
    stderr: Option<u32>,
}

/// The process task: exec, then output and the final Status as frames.
async fn run(
    runtime: ContainerRuntime,
    id: String,
    opts: ExecOptions,
    ids: Ids,
    mut inputs: mpsc::Receiver<Input>,
    frames: mpsc::Sender<Frame>,
) {
    // kubectl sends the terminal's size first; the process should start with it.
    let mut early = Vec::new();
    let mut size = None;
    if opts.tty {
        let first = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(input) = inputs.recv().await {
                match input {
                    Input::Resize(w, h) => return Some((w, h)),
                    other => early.push(other),
                }
            }
            None
        });
        size = first.await.ok().flatten();
    }
    let request = ExecRequest {
        command: opts.command.clone(),
        tty: opts.tty,
        stdin: opts.stdin,
        size,
    };
    let status = match runtime.exec(&id, &request).await {
        Ok(process) => drive(process, early, inputs, &frames, ids, &opts).await,
        Err(err) => start_failure(&err),
    };
    let body = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
    let _ = frames
        .send(Frame::Data {
            stream_id: ids.error,
            flags: FLAG_FIN,
            data: body,
        })
        .await;
}

async fn drive(
    process: ExecSession,
    early: Vec<Input>,
    mut inputs: mpsc::Receiver<Input>,
    frames: &mpsc::Sender<Frame>,
    ids: Ids,
    opts: &ExecOptions,
) -> Value {
    let ExecSession {
        stdin,
        stdout,
        stderr,
        mut resizer,
        exit,
    } = process;
    let stdout = tokio::spawn(pump(stdout, ids.stdout, frames.clone()));
    let stderr = tokio::spawn(pump(stderr, ids.stderr, frames.clone()));

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
    let mut early = early.into_iter();
    let code = loop {
        let input = match early.next() {
            Some(input) => Some(input),
            None => tokio::select! {
                code = &mut exit => break code,
                input = inputs.recv() => input,
            },
        };
        match input {
            Some(Input::Stdin(data)) => {
                if let Some(tx) = &stdin_tx {
                    if tx.send(data).await.is_err() {
                        stdin_tx = None;
                    }
                }
            }
            Some(Input::StdinClosed) => stdin_tx = None,
            Some(Input::Resize(w, h)) => {
                let _ = resizer.resize(w, h).await;
            }
            // The frame loop ended; the session aborts us.
            None => std::future::pending::<()>().await,
        }
    };
    drop(stdin_tx);

    for pump in [stdout, stderr] {
        let abort = pump.abort_handle();
        if tokio::time::timeout(OUTPUT_DRAIN, pump).await.is_err() {
            abort.abort();
        }
    }
    match code {
        Ok(code) => exit_status(&opts.command, code),
        Err(err) => start_failure(&err),
    }
}

/// Copies one output to its stream and ends the stream with FIN (discards it without one).
async fn pump(
    mut from: impl AsyncRead + Unpin,
    stream_id: Option<u32>,
    frames: mpsc::Sender<Frame>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(stream_id) = stream_id {
            let data = Bytes::copy_from_slice(&buf[..n]);
            let frame = Frame::Data {
                stream_id,
                flags: 0,
                data,
            };
            if frames.send(frame).await.is_err() {
                return;
            }
        }
    }
    if let Some(stream_id) = stream_id {
        let _ = frames
            .send(Frame::Data {
                stream_id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_served_protocol_the_client_offers_is_chosen() {
        let mut headers = HeaderMap::new();
        for v in ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"] {
            headers.append("x-stream-protocol-version", v.parse().unwrap());
        }
        assert_eq!(negotiate(&headers).unwrap(), "v5.channel.k8s.io");
        let mut old = HeaderMap::new();
        old.append(
            "x-stream-protocol-version",
            "v3.channel.k8s.io".parse().unwrap(),
        );
        assert!(negotiate(&old).is_err());
    }

    #[test]
    fn the_process_waits_for_the_streams_its_options_ask_for() {
        let opts = ExecOptions::parse(Some("command=cat&stdin=true&stdout=true&stderr=true"));
        let mut streams = Streams::default();
        assert!(streams.open("error", 1));
        assert!(streams.open("stdout", 5));
        assert!(!streams.complete(&opts));
        streams.open("stdin", 3);
        assert!(!streams.complete(&opts));
        streams.open("stderr", 7);
        assert!(streams.complete(&opts));
        assert!(!streams.open("bogus", 9));
    }
}
