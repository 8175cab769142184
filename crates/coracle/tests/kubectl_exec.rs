//! `kubectl exec` end to end: the real kubectl against `coracle server`, over WebSocket.
//!
//! Needs root (real containers), `/usr/bin/kubectl`, `script` (util-linux, for the tty case)
//! and the busybox test image.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    data: tempfile::TempDir,
}

impl Server {
    fn start(data: tempfile::TempDir, port: u16) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_coracle"))
            .args(["--data-dir"])
            .arg(data.path())
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start coracle server");
        let server = Server { child, data };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.kubeconfig().exists() {
            assert!(
                Instant::now() < deadline,
                "server never wrote its kubeconfig"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data.path().join("kubeconfig")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.data.path());
        command
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// kubectl with `input` on its stdin.
    fn kubectl_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        self.run_with_input(self.command(args), input)
    }

    /// kubectl speaking SPDY (its fallback) instead of WebSocket, with `input` on its stdin.
    fn kubectl_spdy(&self, args: &[&str], input: &[u8]) -> Output {
        let mut command = self.command(args);
        command.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
        self.run_with_input(command, input)
    }

    fn run_with_input(&self, mut command: Command, input: &[u8]) -> Output {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, args: &[&str], want: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = String::from_utf8_lossy(&self.kubectl(args).stdout).into_owned();
            if out.contains(want) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {want:?} in {args:?}: {out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn test_images() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("CORACLE_TEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/test-images"));
    if !dir.join("busybox.docker.tar").exists() {
        let status = Command::new("python3")
            .arg(root.join("scripts/make-test-images.py"))
            .arg(&dir)
            .status()
            .expect("build test images");
        assert!(status.success());
    }
    dir
}

fn data_dir_with_busybox() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_coracle"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["image", "import"])
        .arg(test_images().join("busybox.docker.tar"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    data
}

/// Two containers, so `-c` matters; `main` writes into the emptyDir both share.
const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    workingDir: /data
    env:
    - {name: GREETING, value: hello-from-env}
    command: [sh, -c, 'echo written-by-main > /data/note; sleep 3600']
    volumeMounts:
    - {name: shared, mountPath: /data}
  - name: side
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    volumeMounts:
    - {name: shared, mountPath: /shared}
";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn kubectl_exec_runs_commands_in_the_pods_containers_as_upstream() {
    let server = Server::start(data_dir_with_busybox(), free_port());
    let manifest = server.data.path().join("pod.yaml");
    std::fs::write(&manifest, POD).unwrap();
    server.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    server.wait_for(&["get", "pods"], "Running", 60);

    // The pod's hostname (its UTS namespace) and the named container.
    assert_eq!(
        server.ok(&["exec", "web", "-c", "main", "--", "cat", "/etc/hostname"]),
        "web\n"
    );

    // stdin reaches the process, and its end closes the process's stdin.
    let out = server.kubectl_with_input(
        &["exec", "-i", "web", "-c", "main", "--", "cat"],
        b"line-a\nline-b\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "line-a\nline-b\n");

    // A megabyte through stdin and back arrives whole, in order.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = server.kubectl_with_input(&["exec", "-i", "web", "-c", "main", "--", "cat"], &data);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "{} bytes came back", out.stdout.len());

    // Execs at the same time each get their own process and streams.
    let runs: Vec<_> = (0..4)
        .map(|i| {
            server
                .command(&[
                    "exec",
                    "web",
                    "-c",
                    "main",
                    "--",
                    "sh",
                    "-c",
                    &format!("echo run-{i}"),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        assert_eq!(
            stdout(&run.wait_with_output().unwrap()),
            format!("run-{i}\n")
        );
    }

    // The container's env, working directory and volumes; the sidecar sees the same volume.
    assert_eq!(
        server.ok(&[
            "exec",
            "web",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo $GREETING; pwd"
        ]),
        "hello-from-env\n/data\n"
    );
    assert_eq!(
        server.ok(&["exec", "web", "-c", "side", "--", "cat", "/shared/note"]),
        "written-by-main\n"
    );

    // The same privileges as the container's own process: capabilities, no_new_privs and the
    // seccomp filter (pid 1 of the container's pid namespace is its init).
    let fields = "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):";
    let init = server.ok(&[
        "exec",
        "web",
        "-c",
        "main",
        "--",
        "grep",
        "-E",
        fields,
        "/proc/1/status",
    ]);
    let exec = server.ok(&[
        "exec",
        "web",
        "-c",
        "main",
        "--",
        "grep",
        "-E",
        fields,
        "/proc/self/status",
    ]);
    assert_eq!(exec, init);
    assert!(exec.contains("Seccomp:\t2"), "{exec}");

    // stdout and stderr stay apart.
    let out = server.kubectl(&[
        "exec",
        "web",
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");

    // A non-zero exit code is kubectl's exit code, with upstream's message.
    let out = server.kubectl(&["exec", "web", "-c", "main", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stderr(&out), "command terminated with exit code 3\n");

    // A missing program fails with the runtime's own words.
    let out = server.kubectl(&["exec", "web", "-c", "main", "--", "nosuch"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{}",
        stderr(&out)
    );

    // Refusals before the upgrade: upstream's messages.
    let out = server.kubectl(&["exec", "web", "-c", "nosuch", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("container nosuch is not valid for pod web"),
        "{}",
        stderr(&out)
    );
    let out = server.kubectl(&["exec", "missing", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"pods "missing" not found"#),
        "{}",
        stderr(&out)
    );

    // A terminal: kubectl under `script` has one, so `-t` gives the process a pty of the
    // same size, from its first command on.
    let shell = "stty rows 30 cols 100; \
                 kubectl exec -it web -c main -- sh -c 'test -t 0 && echo is-a-tty; stty size; exit 4'";
    // script's stdin stays open: at its end-of-file script would type into the terminal.
    let mut script = Command::new("script")
        .args(["-qec", shell, "/dev/null"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run script");
    let keep_open = script.stdin.take();
    let mut terminal = Vec::new();
    std::io::Read::read_to_end(&mut script.stdout.take().unwrap(), &mut terminal).unwrap();
    let status = script.wait().unwrap();
    drop(keep_open);
    let terminal = String::from_utf8_lossy(&terminal);
    assert!(terminal.contains("is-a-tty\r\n30 100\r\n"), "{terminal:?}");
    assert_eq!(status.code(), Some(4), "{terminal:?}");
    assert!(
        terminal.contains("command terminated with exit code 4"),
        "{terminal:?}"
    );

    // The same over SPDY, kubectl's fallback and older clients' protocol.
    let out = server.kubectl_spdy(&["exec", "-i", "web", "-c", "main", "--", "cat"], &data);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "{} bytes came back", out.stdout.len());
    let out = server.kubectl_spdy(
        &[
            "exec",
            "web",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\ncommand terminated with exit code 3\n");
    let out = server.kubectl_spdy(&["exec", "web", "-c", "main", "--", "nosuch"], b"");
    assert!(
        stderr(&out).contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{}",
        stderr(&out)
    );

    server.ok(&["delete", "pod", "web"]);
    server.stop();
}
