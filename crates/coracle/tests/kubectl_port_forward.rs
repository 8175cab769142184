//! End to end with the real kubectl: `kubectl port-forward` against `coracle server`, over the
//! WebSocket tunnel kubectl 1.33 tries first and over its raw SPDY fallback.
//!
//! Needs root (real containers), `/usr/bin/kubectl` and the busybox test image.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod server_support;

use server_support::*;

/// httpd on the pod's loopback only: reachable through the pod's network namespace alone.
const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']
---
apiVersion: v1
kind: Pod
metadata: {name: pend}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: coracle.test/absent:v1
    imagePullPolicy: Never
";

/// A running `kubectl port-forward`, ready once it printed its `Forwarding from` line.
struct PortForward {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

impl PortForward {
    fn start(server: &Server, local: u16, remote: u16, websockets: bool) -> PortForward {
        let mut command =
            server.command(&["port-forward", "pod/web", &format!("{local}:{remote}")]);
        if !websockets {
            // kubectl's switch for its SPDY-only dialer (no WebSocket attempt first).
            command.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kubectl port-forward");
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });

        let (ready, is_ready) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Forwarding from 127.0.0.1") {
                    let _ = ready.send(());
                }
            }
        });
        if is_ready.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("port-forward never got ready: {}", stderr.join().unwrap());
        }
        PortForward { child, stderr }
    }

    /// Waits for kubectl to exit by itself and returns whether it succeeded and its stderr.
    fn exit(mut self, secs: u64) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        (status.success(), self.stderr.join().unwrap())
    }

    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.join().unwrap()
    }
}

/// Sends a GET on `stream` and reads the answer to its end.
fn get(mut stream: TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect to the forwarded port")
}

/// Fetches the page until httpd answers (it may still be starting).
fn fetch_when_up(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = get(connect(port));
        if answer.contains("200 OK") || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn kubectl_port_forward_reaches_the_pods_loopback_and_reports_upstreams_errors() {
    let server = Server::start(data_dir_with_busybox());
    let manifest = server.data.path().join("pods.yaml");
    std::fs::write(&manifest, PODS).unwrap();
    server.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    server.wait_for(&["get", "pod", "web"], "Running", 40);

    // WebSocket tunnel: several fetches, then two connections open at once.
    let local = free_port();
    let forward = PortForward::start(&server, local, 8080, true);
    let first = fetch_when_up(local);
    assert!(first.contains("hello-from-pod"), "{first}");
    for _ in 0..3 {
        let answer = get(connect(local));
        assert!(answer.contains("hello-from-pod"), "{answer}");
    }
    let (a, b) = (connect(local), connect(local));
    let (a, b) = (
        std::thread::spawn(move || get(a)),
        std::thread::spawn(move || get(b)),
    );
    for answer in [a.join().unwrap(), b.join().unwrap()] {
        assert!(answer.contains("hello-from-pod"), "{answer}");
    }
    let stderr = forward.stop();
    assert!(!stderr.contains("error"), "{stderr}");

    // The raw SPDY upgrade kubectl falls back to.
    let local = free_port();
    let forward = PortForward::start(&server, local, 8080, false);
    for _ in 0..2 {
        let answer = get(connect(local));
        assert!(answer.contains("hello-from-pod"), "{answer}");
    }
    let stderr = forward.stop();
    assert!(!stderr.contains("error"), "{stderr}");

    // Nothing listens on 9090: the kubelet's error reaches kubectl, which gives up.
    let local = free_port();
    let forward = PortForward::start(&server, local, 9090, true);
    let answer = get(connect(local));
    assert!(answer.is_empty(), "{answer}");
    let (ok, stderr) = forward.exit(20);
    assert!(!ok, "{stderr}");
    let reported =
        format!("an error occurred forwarding {local} -> 9090: error forwarding port 9090 to pod ");
    assert!(stderr.contains(&reported), "{stderr}");
    assert!(
        stderr.contains(", uid : failed to connect to localhost:9090 inside namespace "),
        "{stderr}"
    );
    assert!(
        stderr.contains("IPv4: dial tcp4 127.0.0.1:9090: connect: connection refused"),
        "{stderr}"
    );
    assert!(stderr.contains("error: lost connection to pod"), "{stderr}");

    // A pod that is not running is refused before anything is dialled.
    let out = server.kubectl(&["port-forward", "pod/pend", &format!("{}:80", free_port())]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: unable to forward port because pod is not running. Current status=Pending"
    );

    server.ok(&["delete", "pod", "web", "pend"]);
}
