//! End to end with a second real client: the official Python `kubernetes` package runs
//! `tests/python/client_test.py` against `coracle server` (list, create with an init container,
//! watch, status fields, logs, events, delete, and Status errors).
//!
//! Needs root (real containers), `python3` with `kubernetes` installed (`.ci/run` pins it) and
//! the busybox test image.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    child: Child,
    data: tempfile::TempDir,
}

impl Server {
    fn start(data: tempfile::TempDir) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_coracle"))
            .arg("--data-dir")
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
}

impl Drop for Server {
    /// SIGTERM and wait. Containers outlive the server: the Python test deletes its pod.
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn test_images() -> PathBuf {
    let dir = std::env::var_os("CORACLE_TEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-images"));
    if !dir.join("busybox.docker.tar").exists() {
        let status = Command::new("python3")
            .arg(repo_root().join("scripts/make-test-images.py"))
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

#[test]
fn python_kubernetes_client_lists_creates_watches_reads_logs_and_deletes_a_pod() {
    let probe = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .expect("run python3");
    assert!(
        probe.status.success(),
        "the Python kubernetes client is missing (pip install kubernetes, as .ci/run does): {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let server = Server::start(data_dir_with_busybox());
    let out = Command::new("timeout")
        .arg("180")
        .arg("python3")
        .arg(repo_root().join("tests/python/client_test.py"))
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .env("HOME", server.data.path())
        .output()
        .expect("run the python client test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("ok: python kubernetes client passed"),
        "{stdout}"
    );
}
