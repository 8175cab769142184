//! End to end with a second real client: the official Python `kubernetes` package runs
//! `tests/python/client_test.py` against `coracle server` (list, create with an init container,
//! watch, status fields, logs, events, delete, and Status errors).
//!
//! Needs root (real containers), `python3` with `kubernetes` installed (`.ci/run` pins it) and
//! the busybox test image.

use std::process::Command;

mod server_support;

use server_support::*;

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
