//! `/openapi/v2` against `coracle server`: the Swagger 2.0 document as JSON through
//! `kubectl get --raw`, as the gnostic protobuf message that kubectl decodes (with our own
//! messages and with kubectl's `explain --output=plaintext-openapiv2`, which reads only v2),
//! and 304 on a matching `If-None-Match`.
//!
//! Needs `/usr/bin/kubectl` and curl.

use std::process::Command;

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
