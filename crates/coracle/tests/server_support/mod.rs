//! What the end-to-end tests against `coracle server` share: a server on a free loopback port
//! with its own data dir, the real `kubectl` pointed at it, and the busybox test image.
//!
//! Needs root (real containers) and `/usr/bin/kubectl`.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `coracle server`; stopped with SIGTERM by [`Server::stop`], killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// The server's data directory.
    pub data: tempfile::TempDir,
    /// The loopback port it serves on.
    pub port: u16,
}

impl Server {
    /// Starts a server on a free port and waits for its kubeconfig.
    pub fn start(data: tempfile::TempDir) -> Server {
        Server::start_on(data, free_port())
    }

    /// Starts a server on `port` (a restart reuses the port the kubeconfig names).
    pub fn start_on(data: tempfile::TempDir, port: u16) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_coracle"))
            .args(["--data-dir"])
            .arg(data.path())
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start coracle server");
        let server = Server {
            child: Some(child),
            data,
            port,
        };
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

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data.path().join("kubeconfig")
    }

    /// A `kubectl` command pointed at this server (its own HOME, so its own caches).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.data.path());
        command
    }

    /// Runs kubectl with no input.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl with `input` on its stdin.
    pub fn kubectl_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(self.command(args), input)
    }

    /// Runs kubectl, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    }

    /// Runs kubectl until its stdout contains `want`; that stdout.
    pub fn wait_for(&self, args: &[&str], want: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = stdout(&self.kubectl(args));
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

    /// SIGTERM and wait; returns the data dir for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.terminate();
        let placeholder = tempfile::tempdir().expect("a temporary directory");
        std::mem::replace(&mut self.data, placeholder)
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    /// Deletes the pods still there, so that their containers do not outlive the test (a
    /// server stopped with [`Server::stop`] leaves them to the next one), then stops it.
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self
                .command(&[
                    "delete",
                    "pods",
                    "--all",
                    "--all-namespaces",
                    "--grace-period=1",
                    "--timeout=30s",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        self.terminate();
    }
}

/// Runs `command` with `input` on its stdin, capturing its output.
pub fn run_with_input(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test images' directory (`CORACLE_TEST_IMAGES`), built if missing.
pub fn test_images() -> PathBuf {
    let root = repo_root();
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

/// A fresh data dir with the busybox test image imported.
pub fn data_dir_with_busybox() -> tempfile::TempDir {
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

/// A command's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
