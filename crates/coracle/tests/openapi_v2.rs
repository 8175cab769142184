//! `/openapi/v2` against `coracle server`: the Swagger 2.0 document as JSON through
//! `kubectl get --raw`, as the gnostic protobuf message that kubectl decodes (with our own
//! messages and with kubectl's `explain --output=plaintext-openapiv2`, which reads only v2),
//! and 304 on a matching `If-None-Match`; and kubectl's fallback to v2 when `/openapi/v3`
//! fails, through a proxy that answers 404 there.
//!
//! Needs `/usr/bin/kubectl`, curl and python3.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use coracle_apiserver::openapi::v2::gnostic;
use coracle_apiserver::openapi::v2::{PROTOBUF, PROTOBUF_CONTENT_TYPE};
use prost::Message;

mod server_support;

use server_support::*;

/// A curl request to the server with the admin token: `(status, headers, body)`.
fn curl(server: &Server, headers: &[&str], path: &str) -> (u16, String, Vec<u8>) {
    let token = std::fs::read_to_string(server.data.path().join("pki/token")).unwrap();
    let head = server.data.path().join("curl-headers");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-D"])
        .arg(&head)
        .arg("--cacert")
        .arg(server.data.path().join("pki/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())]);
    for header in headers {
        cmd.args(["-H", header]);
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{}{path}", server.port))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {}", stderr(&out));
    let head = std::fs::read_to_string(head).unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head, out.stdout)
}

/// A response header's value (names are case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no {name} in {head}"))
        .1
        .trim()
}

#[test]
fn openapi_v2_is_served_as_json_and_protobuf_with_etags() {
    let server = Server::start(tempfile::tempdir().unwrap());

    // JSON, the default.
    let raw = server.ok(&["get", "--raw", "/openapi/v2"]);
    let doc: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(doc["swagger"], "2.0");
    let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object());

    // Protobuf, as client-go's OpenAPISchema() asks for it.
    let accept = format!("Accept: {PROTOBUF}");
    let (code, head, body) = curl(&server, &[&accept], "/openapi/v2");
    assert_eq!(code, 200, "{head}");
    assert_eq!(header(&head, "content-type"), PROTOBUF_CONTENT_TYPE);
    let message = gnostic::Document::decode(body.as_slice()).unwrap();
    assert_eq!(message.swagger, "2.0");
    let definitions = message.definitions.unwrap().additional_properties;
    assert!(definitions
        .iter()
        .any(|d| d.name == "io.k8s.api.core.v1.Pod"));

    // The same ETag again answers 304 without a body; JSON has an ETag of its own.
    let etag = header(&head, "etag").to_owned();
    let if_none_match = format!("If-None-Match: {etag}");
    let (code, _, body) = curl(&server, &[&accept, &if_none_match], "/openapi/v2");
    assert_eq!((code, body.len()), (304, 0));
    let (code, head, _) = curl(&server, &[&if_none_match], "/openapi/v2");
    assert_eq!(code, 200);
    let json_etag = header(&head, "etag").to_owned();
    assert_ne!(json_etag, etag);
    let if_none_match = format!("If-None-Match: {json_etag}");
    let (code, _, _) = curl(&server, &[&if_none_match], "/openapi/v2");
    assert_eq!(code, 304);

    // kubectl's v2 explain decodes the protobuf with gnostic and finds Pod by its GVK.
    let explain = server.ok(&["explain", "pods.spec", "--output=plaintext-openapiv2"]);
    assert!(explain.contains("KIND:     Pod"), "{explain}");
    assert!(explain.contains("RESOURCE: spec <Object>"), "{explain}");
    assert!(
        explain.contains("containers\t<[]Object> -required-"),
        "{explain}"
    );
    server.stop();
}

/// A plain-HTTP proxy to the server that adds the token and answers 404 on `/openapi/v3`, as
/// a server without v3 would; it prints each request's method, path and `Accept` on stderr.
const PROXY_WITHOUT_V3: &str = r#"
import http.server, ssl, sys, urllib.request, urllib.error
upstream, ca, token, port = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().strip(), int(sys.argv[4])
tls = ssl.create_default_context(cafile=ca)
class Proxy(http.server.BaseHTTPRequestHandler):
    def forward(self):
        print(self.command, self.path, self.headers.get("Accept"), file=sys.stderr, flush=True)
        if self.path.startswith("/openapi/v3"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        skip = ("host", "authorization", "accept-encoding", "connection")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        headers["Authorization"] = "Bearer " + token
        request = urllib.request.Request(upstream + self.path, body, headers, method=self.command)
        try:
            response = urllib.request.urlopen(request, context=tls)
        except urllib.error.HTTPError as error:
            response = error
        data = response.read()
        self.send_response(response.status)
        for k, v in response.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = forward
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Proxy).serve_forever()
"#;

/// The proxy process, killed when dropped.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn without_openapi_v3_kubectl_validates_and_explains_with_v2() {
    let server = Server::start(tempfile::tempdir().unwrap());
    let dir = server.data.path();
    let port = free_port();
    let log = dir.join("proxy.log");
    let proxy = Proxy(
        Command::new("python3")
            .args([
                "-c",
                PROXY_WITHOUT_V3,
                &format!("https://127.0.0.1:{}", server.port),
            ])
            .arg(dir.join("pki/ca.crt"))
            .arg(dir.join("pki/token"))
            .arg(port.to_string())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let server_url = format!("--server=http://127.0.0.1:{port}");
    let kubectl = |args: &[&str], input: &[u8]| {
        let mut command = Command::new("kubectl");
        command
            .args([server_url.as_str(), "--token=unused"])
            .args(args)
            .env("HOME", dir)
            .env("KUBECONFIG", "/dev/null");
        run_with_input(command, input)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kubectl(&["get", "--raw", "/version"], b"").status.success() {
        assert!(Instant::now() < deadline, "the proxy never answered");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Strict validation: the PATCH operation in v2 takes fieldValidation, so kubectl leaves
    // unknown fields to the server.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {a: '1'}\n";
    let bogus = format!("{manifest}bogusField: 1\n");
    let apply = ["apply", "--validate=strict", "-f", "-"];
    let out = kubectl(&apply, bogus.as_bytes());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("strict decoding error: unknown field \"bogusField\""),
        "{}",
        stderr(&out)
    );
    let out = kubectl(&apply, manifest.as_bytes());
    assert_eq!(stdout(&out), "configmap/c1 created\n", "{}", stderr(&out));

    // explain falls back to v2 as well.
    let out = kubectl(&["explain", "pods.spec.restartPolicy"], b"");
    assert!(
        stdout(&out).contains("FIELD:    restartPolicy <string>"),
        "{}",
        stderr(&out)
    );

    drop(proxy);
    let requests = std::fs::read_to_string(&log).unwrap();
    assert!(
        requests.contains(&format!("GET /openapi/v2?timeout=32s {PROTOBUF}")),
        "{requests}"
    );
    assert!(requests.contains("fieldValidation=Strict"), "{requests}");
    server.stop();
}
