//! `pods/<name>/portforward`: `kubectl port-forward` as upstream serves it.
//!
//! The client upgrades the request either to a WebSocket with subprotocol
//! `SPDY/3.1+portforward.k8s.io`, whose binary messages carry a byte stream of SPDY frames
//! (kube-apiserver's tunnelling handler), or, as the fallback, to raw SPDY/3.1
//! (`X-Stream-Protocol-Version: portforward.k8s.io`). Either way one SPDY session follows
//! ([`spdy`]), in which every local connection opens two streams with the same `requestid`:
//! `error` and `data`, each with a `port` header.
//!
//! For each pair we do what the kubelet and containerd do: connect to `localhost:<port>` inside
//! the pod's network namespace (so a server on the pod's 127.0.0.1 is reachable), copy bytes
//! both ways, and close the data stream and then the error stream. A failure is written as text
//! on the error stream, worded as upstream words it.
//!
//! # Caveats
//!
//! When the pod side closes, its data stream is closed at once; containerd instead waits up to
//! a second for the client's side first. When the client closes its side first, the pod's
//! socket is half-closed and the pod may keep answering. A pair whose second stream does not
//! come within 30 s is reported on its error stream as the kubelet does, but without the
//! kubelet's connection pointer in the text. SPDY flow control is not enforced ([`spdy`]): a
//! pod that stops reading its input holds up the session's other streams once 16 frames for it
//! are queued.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use coracle_kubelet::state::PodState;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::meta;
use crate::spdy::{self, Frame, FLAG_FIN};
use crate::state::{stopped, ApiState};
use crate::status_error::ApiError;

/// The WebSocket subprotocol of SPDY tunnelled in WebSocket messages.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The port-forward protocol negotiated on a raw SPDY upgrade.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// How long the kubelet waits for the second stream of a pair (its default
/// `streamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How much is read from the pod's socket into one DATA frame.
const CHUNK: usize = 32 * 1024;

/// Where the streams of one pod connect.
#[derive(Debug, Clone)]
struct PodTarget {
    /// The sandbox id, which upstream's messages name the pod by.
    sandbox: String,
    /// The sandbox's network namespace file; `None` with host networking.
    netns: Option<PathBuf>,
}

/// Answers a port-forward request: checks the pod, then upgrades and runs the SPDY session.
pub async fn serve(
    state: Arc<ApiState>,
    namespace: &str,
    name: &str,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let target = pod_target(&state, namespace, name)?;
    let shutdown = state.shutdown.clone();

    if is_websocket(&parts.headers) {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?
            .protocols([TUNNEL_PROTOCOL]);
        if upgrade.selected_protocol().is_none() {
            return Err(ApiError::BadRequest(format!(
                "port-forward over WebSocket needs the subprotocol {TUNNEL_PROTOCOL}"
            )));
        }
        return Ok(upgrade.on_upgrade(move |socket| async move {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let session = tokio::spawn(run_session(ours, target, shutdown));
            bridge_websocket(socket, theirs).await;
            let _ = session.await;
        }));
    }

    if !is_spdy(&parts.headers) {
        return Err(ApiError::BadRequest("Upgrade request required".into()));
    }
    if !offers_port_forward(&parts.headers) {
        return Err(ApiError::Forbidden(format!(
            "unable to upgrade: unable to negotiate protocol: server supports [{PORT_FORWARD_PROTOCOL}]"
        )));
    }
    spdy_upgrade(
        &mut parts,
        PORT_FORWARD_PROTOCOL,
        "port-forward",
        move |io| run_session(io, target, shutdown),
    )
}

/// Answers a raw `Upgrade: SPDY/3.1` request (port-forward's, exec's) with 101 for `protocol`
/// and runs `session` on the upgraded connection.
pub(crate) fn spdy_upgrade<F, Fut>(
    parts: &mut Parts,
    protocol: &str,
    what: &'static str,
    session: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let on_upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::BadRequest("the connection cannot be upgraded".into()))?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => session(TokioIo::new(upgraded)).await,
            Err(err) => tracing::debug!("{what} upgrade failed: {err}"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", protocol)
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn is_spdy(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// Whether the client offers `portforward.k8s.io` (or offers nothing, as old clients do).
fn offers_port_forward(headers: &HeaderMap) -> bool {
    let mut offered = headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .peekable();
    offered.peek().is_none() || offered.any(|p| p == PORT_FORWARD_PROTOCOL)
}

/// Finds the running sandbox of pod `name`, refusing a pod that has none as upstream does.
fn pod_target(state: &ApiState, namespace: &str, name: &str) -> Result<PodTarget, ApiError> {
    let pod = state.pod(namespace, name)?;

    // kube-apiserver's PortForwardLocation: a pod must be bound before anything is dialled.
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str);
    if node.is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }

    // The kubelet's runtime looks the sandbox up by pod UID; a pod without one is refused.
    let uid = meta::meta_str(&pod, "uid").unwrap_or("");
    let sandbox = PodState::load(&state.data_dir.join("pods").join(uid))
        .ok()
        .and_then(|s| s.sandbox);
    let Some(sandbox) = sandbox else {
        return Err(ApiError::BadRequest(format!(
            "unable to upgrade connection: pod {name} has no running sandbox: \
             failed to find sandboxID for pod {name}_{namespace}({uid})"
        )));
    };
    let netns = (!sandbox.host_network)
        .then(|| coracle_runtime::sandbox::sandbox_namespaces(&sandbox.dir).net);
    Ok(PodTarget {
        sandbox: sandbox.id,
        netns,
    })
}

/// Copies binary WebSocket messages into `io` and what `io` yields back out as messages:
/// message boundaries carry no meaning in the tunnelling protocol.
async fn bridge_websocket(mut socket: WebSocket, io: tokio::io::DuplexStream) {
    let (mut from_session, mut to_session) = tokio::io::split(io);
    let mut buf = vec![0u8; CHUNK];
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    if to_session.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                // Pongs are sent for us; text messages are not part of the protocol.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_) | Message::Close(_)) | Err(_)) | None => break,
            },
            read = from_session.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let close = CloseFrame { code: 1000, reason: "".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    break;
                }
                Ok(n) => {
                    let bytes = Bytes::copy_from_slice(&buf[..n]);
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
}

/// The data stream of a request, by stream id; `inbound` feeds its forward.
struct DataStream {
    inbound: mpsc::Sender<Bytes>,
}

/// The two streams of one request as they arrive.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Bytes>)>,
    port: String,
    /// Tells this pair from a later one with the same request id when its timer fires.
    opened: u64,
}

/// What the session does after a frame.
enum Next {
    Continue,
    End,
}

/// A forward in progress: its task, and how to tell it the client reset its data stream.
struct Running {
    task: JoinHandle<()>,
    reset: Option<oneshot::Sender<()>>,
}

/// One SPDY session: the streams the client opened and the forwards running for them.
struct Session {
    target: PodTarget,
    frames: mpsc::Sender<Frame>,
    data_streams: HashMap<u32, DataStream>,
    pairs: HashMap<String, Pair>,
    /// By data stream id.
    forwards: HashMap<u32, Running>,
    last_stream_id: u32,
    going_away: bool,
    /// How long the first stream of a pair waits for the second.
    pair_timeout: Duration,
    /// Pairs whose time ran out, as (request id, `opened`).
    expired: mpsc::Sender<(String, u64)>,
    pairs_opened: u64,
}

/// Runs one SPDY session on `io` until the client goes away or the server stops.
async fn run_session<S>(io: S, target: PodTarget, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    run_session_with(io, target, shutdown, STREAM_CREATION_TIMEOUT).await;
}

async fn run_session_with<S>(
    io: S,
    target: PodTarget,
    mut shutdown: watch::Receiver<bool>,
    pair_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(io);
    let (frames, outgoing) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(write_frames(writer, outgoing));
    let (expired, mut expiries) = mpsc::channel(16);
    let mut session = Session {
        target,
        frames,
        data_streams: HashMap::new(),
        pairs: HashMap::new(),
        forwards: HashMap::new(),
        last_stream_id: 0,
        going_away: false,
        pair_timeout,
        expired,
        pairs_opened: 0,
    };

    let mut decoder = spdy::Decoder::default();
    let mut buf = BytesMut::with_capacity(CHUNK);
    'session: loop {
        let read = tokio::select! {
            read = reader.read_buf(&mut buf) => read,
            Some((request, opened)) = expiries.recv() => {
                if let Next::End = session.on_pair_timeout(&request, opened).await {
                    break;
                }
                continue;
            }
            _ = stopped(&mut shutdown) => break,
        };
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
        loop {
            let next = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => session.on_frame(frame).await,
                Ok(None) => break,
                Err(err) => session.protocol_error(err).await,
            };
            if let Next::End = next {
                break 'session;
            }
        }
        session.forwards.retain(|_, f| !f.task.is_finished());
    }

    // The client is gone: so are the pod connections.
    for forward in session.forwards.into_values() {
        forward.task.abort();
    }
    drop(session.frames);
    let _ = writer.await;
}

impl Session {
    async fn send(&self, frame: Frame) -> Next {
        match self.frames.send(frame).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::End,
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> Next {
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => self.on_syn_stream(stream_id, &headers).await,
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                self.on_data(stream_id, flags, data).await;
                Next::Continue
            }
            Frame::RstStream { stream_id, .. } => {
                self.data_streams.remove(&stream_id);
                // kubectl resets the data stream once it has read it to the end; the forward
                // still closes the error stream, which kubectl waits for.
                let reset = self
                    .forwards
                    .get_mut(&stream_id)
                    .and_then(|f| f.reset.take());
                if let Some(reset) = reset {
                    let _ = reset.send(());
                }
                Next::Continue
            }
            Frame::Ping { id } => self.send(Frame::Ping { id }).await,
            Frame::GoAway { .. } => {
                self.going_away = true;
                Next::Continue
            }
            Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => Next::Continue,
        }
    }

    /// Accepts an `error` or `data` stream and starts the forward once its pair is complete.
    async fn on_syn_stream(&mut self, stream_id: u32, headers: &spdy::Headers) -> Next {
        let kind = spdy::header(headers, "streamtype").unwrap_or("");
        let request = spdy::header(headers, "requestid").unwrap_or("");
        let port = spdy::header(headers, "port").unwrap_or("");
        if self.going_away || !matches!(kind, "error" | "data") {
            let status = spdy::RST_REFUSED_STREAM;
            return self.send(Frame::RstStream { stream_id, status }).await;
        }
        self.last_stream_id = self.last_stream_id.max(stream_id);
        let reply = Frame::SynReply {
            stream_id,
            flags: 0,
            headers: Vec::new(),
        };
        if let Next::End = self.send(reply).await {
            return Next::End;
        }

        if !self.pairs.contains_key(request) {
            self.open_pair(request);
        }
        let pair = self.pairs.entry(request.to_owned()).or_default();
        pair.port = port.to_owned();
        if kind == "error" {
            pair.error = Some(stream_id);
        } else {
            let (inbound, receiver) = mpsc::channel(16);
            self.data_streams.insert(stream_id, DataStream { inbound });
            pair.data = Some((stream_id, receiver));
        }
        if pair.error.is_none() || pair.data.is_none() {
            return Next::Continue;
        }
        if let Some(Pair {
            error: Some(error),
            data: Some((data, inbound)),
            port,
            ..
        }) = self.pairs.remove(request)
        {
            let (reset, on_reset) = oneshot::channel();
            let frames = self.frames.clone();
            let forward = forward(
                self.target.clone(),
                port,
                (error, data),
                inbound,
                on_reset,
                frames,
            );
            let task = tokio::spawn(forward);
            let reset = Some(reset);
            self.forwards.insert(data, Running { task, reset });
        }
        Next::Continue
    }

    /// Hands client bytes to the forward; FIN (dropping the sender) tells it the client is done.
    /// Bytes on error streams are dropped: kubectl never writes there.
    async fn on_data(&mut self, stream_id: u32, flags: u8, data: Bytes) {
        let Some(stream) = self.data_streams.get(&stream_id) else {
            return;
        };
        if !data.is_empty() && stream.inbound.send(data).await.is_err() {
            self.data_streams.remove(&stream_id);
        }
        if flags & FLAG_FIN != 0 {
            self.data_streams.remove(&stream_id);
        }
    }

    /// Starts waiting for the two streams of `request`, for at most the pair timeout.
    fn open_pair(&mut self, request: &str) {
        self.pairs_opened += 1;
        let opened = self.pairs_opened;
        let pair = Pair {
            opened,
            ..Pair::default()
        };
        self.pairs.insert(request.to_owned(), pair);
        let (expired, timeout) = (self.expired.clone(), self.pair_timeout);
        let request = request.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = expired.send((request, opened)).await;
        });
    }

    /// A pair still incomplete when its time ran out: the kubelet reports it on the error
    /// stream; we also close that stream and reset the data stream.
    async fn on_pair_timeout(&mut self, request: &str, opened: u64) -> Next {
        if self.pairs.get(request).is_none_or(|p| p.opened != opened) {
            return Next::Continue;
        }
        let Some(pair) = self.pairs.remove(request) else {
            return Next::Continue;
        };
        if let Some(error) = pair.error {
            let text = format!("(request={request}) timed out waiting for streams");
            tracing::info!(sandbox = %self.target.sandbox, "port-forward: {text}");
            let message = Frame::Data {
                stream_id: error,
                flags: FLAG_FIN,
                data: Bytes::from(text),
            };
            if let Next::End = self.send(message).await {
                return Next::End;
            }
        }
        if let Some((data, _)) = pair.data {
            self.data_streams.remove(&data);
            let status = spdy::RST_CANCEL;
            return self
                .send(Frame::RstStream {
                    stream_id: data,
                    status,
                })
                .await;
        }
        Next::Continue
    }

    /// A frame we cannot read ends the session with GOAWAY, as the spec asks.
    async fn protocol_error(&mut self, err: spdy::SpdyError) -> Next {
        tracing::debug!("port-forward: {err}");
        let _ = self
            .send(Frame::GoAway {
                last_good_stream_id: self.last_stream_id,
                status: spdy::RST_PROTOCOL_ERROR,
            })
            .await;
        Next::End
    }
}

/// Encodes frames from a SPDY session (port-forward's, exec's) onto the connection, in order.
pub(crate) async fn write_frames<W: AsyncWrite>(
    mut writer: tokio::io::WriteHalf<W>,
    mut frames: mpsc::Receiver<Frame>,
) {
    let mut encoder = spdy::Encoder::default();
    let mut out = Vec::new();
    while let Some(frame) = frames.recv().await {
        out.clear();
        encoder.encode(&frame, &mut out);
        // Write whatever else is queued in the same go.
        while let Ok(frame) = frames.try_recv() {
            encoder.encode(&frame, &mut out);
        }
        if writer.write_all(&out).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// One request: connect inside the pod, copy both ways, then close data and error streams.
async fn forward(
    target: PodTarget,
    port: String,
    (error, data): (u32, u32),
    inbound: mpsc::Receiver<Bytes>,
    reset: oneshot::Receiver<()>,
    frames: mpsc::Sender<Frame>,
) {
    let fin = |stream_id| Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    let result = match port.parse::<u16>() {
        Ok(port) => match connect_in_pod(&target, port).await {
            Ok(socket) => {
                copy(socket, data, inbound, reset, &frames).await;
                Ok(())
            }
            Err(text) => Err(format!(
                "error forwarding port {port} to pod {}, uid : {text}",
                target.sandbox
            )),
        },
        // The kubelet's handler refuses a request whose port header is not a number.
        Err(_) => Err(format!("invalid port header: {port:?}")),
    };

    // kubectl reads the error stream to its end before it lets the local connection go.
    if let Err(text) = result {
        tracing::info!(sandbox = %target.sandbox, "port-forward: {text}");
        let _ = frames.send(fin(data)).await;
        let message = Frame::Data {
            stream_id: error,
            flags: 0,
            data: Bytes::from(text),
        };
        let _ = frames.send(message).await;
    }
    let _ = frames.send(fin(error)).await;
}

/// Copies until the pod closes its side (then closes the data stream and gives the client a
/// second to close its own, as containerd does) or until the client resets the stream.
async fn copy(
    socket: TcpStream,
    data: u32,
    mut inbound: mpsc::Receiver<Bytes>,
    mut reset: oneshot::Receiver<()>,
    frames: &mpsc::Sender<Frame>,
) {
    let (mut from_pod, mut to_pod) = socket.into_split();
    let to_pod_task = async move {
        while let Some(bytes) = inbound.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // The client sent FIN: half-close, so the pod sees end of input and can still answer.
        let _ = to_pod.shutdown().await;
    };
    tokio::pin!(to_pod_task);

    let mut buf = vec![0u8; CHUNK];
    let mut client_done = false;
    loop {
        tokio::select! {
            read = from_pod.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let frame = Frame::Data {
                        stream_id: data,
                        flags: 0,
                        data: Bytes::copy_from_slice(&buf[..n]),
                    };
                    if frames.send(frame).await.is_err() {
                        return;
                    }
                }
            },
            _ = &mut to_pod_task, if !client_done => client_done = true,
            _ = &mut reset => return,
        }
    }

    let fin = Frame::Data {
        stream_id: data,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    let _ = frames.send(fin).await;
    if !client_done {
        let client = async {
            tokio::select! {
                _ = &mut to_pod_task => {}
                _ = &mut reset => {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), client).await;
    }
}

/// Connects to `localhost:port` in the pod's network namespace, IPv4 first, then IPv6, as
/// containerd does; the error is worded as containerd words it.
async fn connect_in_pod(target: &PodTarget, port: u16) -> Result<TcpStream, String> {
    let (done, result) = oneshot::channel();
    let (netns, sandbox) = (target.netns.clone(), target.sandbox.clone());

    // setns changes the calling thread only, so the connect runs on a thread of its own that
    // ends right after: no tokio worker ever enters the pod's namespace.
    let spawned = std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let _ = done.send(connect_blocking(netns, &sandbox, port));
        });
    if let Err(err) = spawned {
        return Err(format!("cannot start a thread to connect: {err}"));
    }
    let socket = result
        .await
        .map_err(|_| "the connecting thread ended without an answer".to_owned())??;
    socket
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(socket))
        .map_err(|e| e.to_string())
}

fn connect_blocking(
    netns: Option<PathBuf>,
    sandbox: &str,
    port: u16,
) -> Result<StdTcpStream, String> {
    if let Some(path) = &netns {
        let entered = std::fs::File::open(path).and_then(|file| {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
        });
        if let Err(err) = entered {
            return Err(format!(
                "failed to execute portforward in network namespace {:?}: {}",
                path.display().to_string(),
                go_error(&err)
            ));
        }
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let err4 = match StdTcpStream::connect(v4) {
        Ok(socket) => return Ok(socket),
        Err(err) => err,
    };
    let err6 = match StdTcpStream::connect(v6) {
        Ok(socket) => return Ok(socket),
        Err(err) => err,
    };
    Err(format!(
        "failed to connect to localhost:{port} inside namespace {sandbox:?}, \
         IPv4: dial tcp4 {v4}: connect: {} IPv6 dial tcp6 {v6}: connect: {} ",
        go_error(&err4),
        go_error(&err6)
    ))
}

/// An OS error as Go prints it: the lower-case errno text, without the number.
fn go_error(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let text = nix::errno::Errno::from_raw(code).desc();
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default()
        }
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_go_prints_them() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(go_error(&refused), "connection refused");
    }

    #[test]
    fn refused_connect_names_both_families_as_containerd_does() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let text = connect_blocking(None, "sb1", port).unwrap_err();
        assert!(
            text.starts_with(&format!(
                "failed to connect to localhost:{port} inside namespace \"sb1\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: "
            )),
            "{text}"
        );
    }

    #[test]
    fn protocol_offer_accepts_port_forward_or_nothing() {
        let mut headers = HeaderMap::new();
        assert!(offers_port_forward(&headers));
        headers.append(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        assert!(!offers_port_forward(&headers));
        headers.append(
            "x-stream-protocol-version",
            PORT_FORWARD_PROTOCOL.parse().unwrap(),
        );
        assert!(offers_port_forward(&headers));
    }

    /// kubectl's side of a session, on one end of a pipe.
    struct Client {
        io: tokio::io::DuplexStream,
        encoder: spdy::Encoder,
        decoder: spdy::Decoder,
        buf: BytesMut,
    }

    impl Client {
        fn start(netns: Option<PathBuf>) -> Client {
            let (io, server) = tokio::io::duplex(64 * 1024);
            let target = PodTarget {
                sandbox: "sb1".into(),
                netns,
            };
            let (stop, shutdown) = watch::channel(false);
            tokio::spawn(async move {
                run_session(server, target, shutdown).await;
                drop(stop);
            });
            Client {
                io,
                encoder: spdy::Encoder::with_dictionary(),
                decoder: spdy::Decoder::default(),
                buf: BytesMut::new(),
            }
        }

        async fn send(&mut self, frames: &[Frame]) {
            let mut out = Vec::new();
            for frame in frames {
                self.encoder.encode(frame, &mut out);
            }
            self.io.write_all(&out).await.unwrap();
        }

        async fn open_pair(&mut self, port: u16, request: &str, error: u32, data: u32) {
            let syn = |stream_id, kind: &str| Frame::SynStream {
                stream_id,
                associated_id: 0,
                priority: 0,
                flags: 0,
                headers: vec![
                    ("streamtype".into(), kind.into()),
                    ("port".into(), port.to_string()),
                    ("requestid".into(), request.into()),
                ],
            };
            // As kubectl does: the error stream first, closed by the client at once.
            self.send(&[
                syn(error, "error"),
                data_frame(error, FLAG_FIN, ""),
                syn(data, "data"),
            ])
            .await;
        }

        /// Frames until the FIN on `stream_id`, which ends the request.
        async fn until_fin(&mut self, stream_id: u32) -> Vec<Frame> {
            let mut frames = Vec::new();
            let read = async {
                loop {
                    while let Some(frame) = self.decoder.decode(&mut self.buf).unwrap() {
                        let fin = matches!(&frame, Frame::Data { stream_id: id, flags, .. }
                            if *id == stream_id && flags & FLAG_FIN != 0);
                        frames.push(frame);
                        if fin {
                            return;
                        }
                    }
                    assert!(self.io.read_buf(&mut self.buf).await.unwrap() > 0, "eof");
                }
            };
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .expect("the request ends");
            frames
        }
    }

    fn data_frame(stream_id: u32, flags: u8, text: &str) -> Frame {
        Frame::Data {
            stream_id,
            flags,
            data: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    /// The DATA frames of `frames` as (stream, flags, text).
    fn data_of(frames: &[Frame]) -> Vec<(u32, u8, String)> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => Some((
                    *stream_id,
                    *flags,
                    String::from_utf8_lossy(data).into_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_stream_pair_is_forwarded_then_data_and_error_streams_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4];
            socket.read_exact(&mut request).await.unwrap();
            socket.write_all(b"pong").await.unwrap();
        });

        let mut client = Client::start(None);
        client.open_pair(port, "0", 1, 3).await;
        client
            .send(&[data_frame(3, 0, "ping"), Frame::Ping { id: 1 }])
            .await;
        let frames = client.until_fin(1).await;

        let replies: Vec<u32> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::SynReply { stream_id, .. } => Some(*stream_id),
                _ => None,
            })
            .collect();
        assert_eq!(replies, [1, 3]);
        assert!(frames.contains(&Frame::Ping { id: 1 }), "{frames:?}");
        assert_eq!(
            data_of(&frames),
            [
                (3, 0, "pong".into()),
                (3, FLAG_FIN, String::new()),
                (1, FLAG_FIN, String::new())
            ]
        );
    }

    #[tokio::test]
    async fn a_reset_after_the_data_fin_closes_the_error_stream_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"bye").await.unwrap();
        });

        // kubectl's order: it reads the data stream to its FIN, resets it, then waits for
        // the error stream's FIN.
        let mut client = Client::start(None);
        client.open_pair(port, "0", 1, 3).await;
        let frames = client.until_fin(3).await;
        assert_eq!(data_of(&frames)[0], (3, 0, "bye".into()));
        let reset_at = std::time::Instant::now();
        let reset = Frame::RstStream {
            stream_id: 3,
            status: 5,
        };
        client.send(&[reset]).await;
        let frames = client.until_fin(1).await;
        assert!(reset_at.elapsed() < Duration::from_millis(900));
        assert_eq!(data_of(&frames), [(1, FLAG_FIN, String::new())]);
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported_on_the_error_stream_in_upstreams_words() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut client = Client::start(None);
        client.open_pair(port, "0", 1, 3).await;
        let data = data_of(&client.until_fin(1).await);

        assert_eq!(data.len(), 3, "{data:?}");
        assert_eq!(data[0], (3, FLAG_FIN, String::new()));
        let (stream, flags, text) = &data[1];
        assert_eq!((*stream, *flags), (1, 0));
        let want = format!(
            "error forwarding port {port} to pod sb1, uid : failed to connect to \
             localhost:{port} inside namespace \"sb1\", IPv4: dial tcp4 127.0.0.1:{port}: \
             connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: "
        );
        assert!(text.starts_with(&want), "{text}");
        assert_eq!(data[2], (1, FLAG_FIN, String::new()));
    }

    #[tokio::test]
    async fn connects_inside_the_network_namespace_it_is_given() {
        // Our own namespace file stands in for a sandbox's: setns into it changes nothing,
        // so the host's listener answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"hi").await.unwrap();
        });
        let mut client = Client::start(Some("/proc/self/ns/net".into()));
        client.open_pair(port, "0", 1, 3).await;
        let data = data_of(&client.until_fin(1).await);
        assert_eq!(data[0], (3, 0, "hi".into()), "{data:?}");
    }

    #[tokio::test]
    async fn an_error_stream_without_its_data_stream_times_out() {
        let (mut io, server) = tokio::io::duplex(64 * 1024);
        let target = PodTarget {
            sandbox: "sb1".into(),
            netns: None,
        };
        let (_stop, shutdown) = watch::channel(false);
        let timeout = Duration::from_millis(100);
        tokio::spawn(run_session_with(server, target, shutdown, timeout));
        let mut client = Client {
            io: {
                let syn = Frame::SynStream {
                    stream_id: 1,
                    associated_id: 0,
                    priority: 0,
                    flags: 0,
                    headers: vec![
                        ("streamtype".into(), "error".into()),
                        ("port".into(), "80".into()),
                        ("requestid".into(), "7".into()),
                    ],
                };
                let mut out = Vec::new();
                spdy::Encoder::with_dictionary().encode(&syn, &mut out);
                io.write_all(&out).await.unwrap();
                io
            },
            encoder: spdy::Encoder::default(),
            decoder: spdy::Decoder::default(),
            buf: BytesMut::new(),
        };
        let data = data_of(&client.until_fin(1).await);
        let text = "(request=7) timed out waiting for streams".to_owned();
        assert_eq!(data, [(1, FLAG_FIN, text)]);
    }

    #[tokio::test]
    async fn streams_other_than_error_and_data_are_refused() {
        let mut client = Client::start(None);
        let syn = Frame::SynStream {
            stream_id: 1,
            associated_id: 0,
            priority: 0,
            flags: 0,
            headers: vec![("streamtype".into(), "stdin".into())],
        };
        client.send(&[syn]).await;
        let mut frames = Vec::new();
        while frames.is_empty() {
            client.io.read_buf(&mut client.buf).await.unwrap();
            while let Some(frame) = client.decoder.decode(&mut client.buf).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            [Frame::RstStream {
                stream_id: 1,
                status: spdy::RST_REFUSED_STREAM
            }]
        );
    }
}
