//! `coracle server` over HTTPS with curl: health without auth, 401 without a token, and
//! bad input answered with Status errors while the server keeps serving.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    data: tempfile::TempDir,
    port: u16,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_coracle"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !data.path().join("kubeconfig").exists() {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = std::fs::read_to_string(data.path().join("pki/token")).unwrap();
    Server {
        child,
        data,
        port,
        token,
    }
}

impl Server {
    /// `(http code, body)` of a curl request.
    fn curl(&self, auth: bool, args: &[&str], path: &str) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.data.path().join("pki/ca.crt"));
        if auth {
            cmd.args(["-H", &format!("Authorization: Bearer {}", self.token)]);
        }
        let out = cmd
            .args(args)
            .arg(format!("https://127.0.0.1:{}{path}", self.port))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_owned())
    }
}

#[test]
fn health_answers_without_auth_and_everything_else_needs_the_token() {
    let server = start();
    use std::os::unix::fs::PermissionsExt;
    for file in ["kubeconfig", "pki/token", "pki/ca.key", "pki/server.key"] {
        let mode = std::fs::metadata(server.data.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert_eq!(server.curl(false, &[], "/healthz"), (200, "ok".into()));
    let (code, body) = server.curl(false, &[], "/version");
    assert_eq!(code, 200);
    assert!(body.contains("\"gitVersion\":\"v1.33.0\""), "{body}");
    let (code, body) = server.curl(false, &[], "/api/v1/pods");
    assert_eq!(code, 401);
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    let (code, _) = server.curl(true, &[], "/api/v1/pods");
    assert_eq!(code, 200);
}

#[test]
fn bad_input_gets_status_errors_and_the_server_keeps_serving() {
    let server = start();
    let big = server.data.path().join("big.json");
    std::fs::write(&big, vec![b' '; 4 * 1024 * 1024]).unwrap();
    let big_arg = format!("@{}", big.display());
    let cm = "/api/v1/namespaces/default/configmaps";
    let json = ["-H", "Content-Type: application/json"];

    let (code, body) = server.curl(true, &[json[0], json[1], "--data-binary", &big_arg], cm);
    assert_eq!(code, 413, "{body}");
    let (code, body) = server.curl(
        true,
        &[
            json[0],
            json[1],
            "--data-binary",
            "{\"a\":\"\u{ff}\"}".replace('\u{ff}', "\\xff").as_str(),
        ],
        cm,
    );
    assert_eq!(code, 400, "{body}");
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    let (code, body) = server.curl(true, &[json[0], json[1], "--data-binary", &deep], cm);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    let (code, _) = server.curl(
        true,
        &["-H", "Content-Type: text/plain", "--data-binary", "x"],
        cm,
    );
    assert_eq!(code, 415);
    let (code, body) = server.curl(true, &[], "/api/v1/namespaces/default/widgets");
    assert_eq!(code, 404, "{body}");
    let (code, body) = server.curl(true, &[], "/api/v1/namespaces/default/pods/nope");
    assert_eq!(code, 404);
    assert!(body.contains("pods \\\"nope\\\" not found"), "{body}");

    let created =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1"}}"#;
    let (code, body) = server.curl(true, &[json[0], json[1], "--data-binary", created], cm);
    assert_eq!(code, 201, "{body}");
    let (code, _) = server.curl(true, &[json[0], json[1], "--data-binary", created], cm);
    assert_eq!(code, 409);
}
