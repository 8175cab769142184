//! End to end with the real kubectl: server-side apply's field ownership against
//! `coracle server` (conflicts, `--force-conflicts`, shared fields, removal of dropped fields,
//! the migration from client-side apply). ConfigMaps only: no image needed.

mod server_support;

use serde_json::{json, Value};
use server_support::*;

fn configmap(name: &str, data: &[(&str, &str)]) -> String {
    let mut out = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if !data.is_empty() {
        out.push_str("data:\n");
        for (k, v) in data {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    out
}

/// Writes `manifest` to a file in the server's directory; its path.
fn manifest(server: &Server, file: &str, text: &str) -> String {
    let path = server.data.path().join(file);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn get(server: &Server, name: &str) -> Value {
    let out = server.ok(&[
        "get",
        "configmap",
        name,
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    serde_json::from_str(&out).unwrap()
}

/// The `fieldsV1` of `manager`'s entry with this operation.
fn fields_of(object: &Value, manager: &str, operation: &str) -> Option<Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .map(|e| e["fieldsV1"].clone())
}

fn first_line(out: &std::process::Output) -> String {
    stderr(out).lines().next().unwrap_or("").to_owned()
}

#[test]
fn server_side_apply_reports_conflicts_forces_shares_and_removes_dropped_fields() {
    let server = Server::start(tempfile::tempdir().unwrap());

    let first = manifest(
        &server,
        "cm.yaml",
        &configmap("x", &[("key", "one"), ("extra", "e")]),
    );
    assert_eq!(
        server.ok(&["apply", "--server-side", "-f", &first]),
        "configmap/x serverside-applied\n"
    );
    let cm = get(&server, "x");
    assert_eq!(
        fields_of(&cm, "kubectl", "Apply"),
        Some(json!({"f:data": {"f:extra": {}, "f:key": {}}}))
    );

    // Another manager changing kubectl's field conflicts, as upstream words it.
    let other = manifest(&server, "other.yaml", &configmap("x", &[("key", "two")]));
    let out = server.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &other,
    ]);
    assert!(!out.status.success());
    assert_eq!(
        first_line(&out),
        "error: Apply failed with 1 conflict: conflict with \"kubectl\": .data.key"
    );
    assert!(
        stderr(&out).contains("--force-conflicts"),
        "{}",
        stderr(&out)
    );
    assert_eq!(get(&server, "x")["data"]["key"], "one");

    // Forced, the field moves to the other manager.
    assert_eq!(
        server.ok(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &other,
        ]),
        "configmap/x serverside-applied\n"
    );
    let yaml = server.ok(&[
        "get",
        "configmap",
        "x",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(yaml.contains("manager: other"), "{yaml}");
    let cm = get(&server, "x");
    assert_eq!(cm["data"], json!({"key": "two", "extra": "e"}));
    assert_eq!(
        fields_of(&cm, "kubectl", "Apply"),
        Some(json!({"f:data": {"f:extra": {}}}))
    );
    assert_eq!(
        fields_of(&cm, "other", "Apply"),
        Some(json!({"f:data": {"f:key": {}}}))
    );

    // kubectl drops `extra` and applies `key` with other's value: `extra` goes, `key` is
    // shared.
    let first = manifest(&server, "cm.yaml", &configmap("x", &[("key", "two")]));
    server.ok(&["apply", "--server-side", "-f", &first]);
    let cm = get(&server, "x");
    assert_eq!(cm["data"], json!({"key": "two"}));
    let shared = Some(json!({"f:data": {"f:key": {}}}));
    assert_eq!(fields_of(&cm, "kubectl", "Apply"), shared);
    assert_eq!(fields_of(&cm, "other", "Apply"), shared);

    // other stops applying `key`: kubectl still owns it, so it stays.
    let other = manifest(&server, "other.yaml", &configmap("x", &[]));
    server.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &other,
    ]);
    let cm = get(&server, "x");
    assert_eq!(cm["data"], json!({"key": "two"}));
    assert_eq!(fields_of(&cm, "other", "Apply"), None);

    // An update (kubectl edit's patch) takes the field without a conflict.
    server.ok(&[
        "patch",
        "configmap",
        "x",
        "-p",
        r#"{"data":{"key":"three"}}"#,
    ]);
    let cm = get(&server, "x");
    assert_eq!(
        fields_of(&cm, "kubectl-patch", "Update"),
        Some(json!({"f:data": {"f:key": {}}}))
    );
    assert_eq!(fields_of(&cm, "kubectl", "Apply"), None);

    // A create owns what it added, the data map itself included (`.`), as upstream records it.
    server.ok(&["create", "configmap", "made", "--from-literal=a=b"]);
    assert_eq!(
        fields_of(&get(&server, "made"), "kubectl-create", "Update"),
        Some(json!({"f:data": {".": {}, "f:a": {}}}))
    );

    // managedFields are not for applying.
    let mut bad = configmap("bad", &[("a", "b")]);
    bad = bad.replace(
        "  name: bad\n",
        "  name: bad\n  managedFields:\n  - {manager: x, operation: Apply, apiVersion: v1, \
         fieldsType: FieldsV1, fieldsV1: {}}\n",
    );
    let bad = manifest(&server, "bad.yaml", &bad);
    let out = server.kubectl(&["apply", "--server-side", "-f", &bad]);
    assert_eq!(
        first_line(&out),
        "Error from server (BadRequest): metadata.managedFields must be nil"
    );
    server.stop();
}

#[test]
fn server_side_apply_after_client_side_apply_migrates_as_upstream() {
    let server = Server::start(tempfile::tempdir().unwrap());

    // Client-side apply creates; its manager owns the fields and the annotation.
    let csa = manifest(
        &server,
        "migrated.yaml",
        &configmap("migrated", &[("key", "a"), ("kept", "k")]),
    );
    assert_eq!(
        server.ok(&["apply", "-f", &csa]),
        "configmap/migrated created\n"
    );
    let cm = get(&server, "migrated");
    assert_eq!(
        fields_of(&cm, "kubectl-client-side-apply", "Update"),
        Some(json!({
            "f:data": {".": {}, "f:key": {}, "f:kept": {}},
            "f:metadata": {"f:annotations": {
                ".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
        }))
    );

    // Another manager conflicts with the client-side-apply manager, named with its version.
    let other = manifest(
        &server,
        "other.yaml",
        &configmap("migrated", &[("key", "b")]),
    );
    let out = server.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &other,
    ]);
    assert_eq!(
        first_line(&out),
        "error: Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" \
         using v1: .data.key"
    );

    // kubectl itself may change what it last applied client-side: no conflict, and kubectl
    // moves the client-side-apply manager's fields to its own apply entry.
    let ssa = manifest(
        &server,
        "migrated.yaml",
        &configmap("migrated", &[("key", "b"), ("kept", "k")]),
    );
    assert_eq!(
        server.ok(&["apply", "--server-side", "-f", &ssa]),
        "configmap/migrated serverside-applied\n"
    );
    let cm = get(&server, "migrated");
    assert_eq!(cm["data"], json!({"key": "b", "kept": "k"}));
    assert_eq!(fields_of(&cm, "kubectl-client-side-apply", "Update"), None);
    let owned = fields_of(&cm, "kubectl", "Apply").unwrap();
    assert_eq!(owned["f:data"]["f:key"], json!({}), "{owned}");
    assert_eq!(owned["f:data"]["f:kept"], json!({}), "{owned}");
    // The annotation follows the applied configuration.
    let last: Value = serde_json::from_str(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["data"], json!({"key": "b", "kept": "k"}));

    // Dropping a key now removes it, as kubectl owns it alone.
    let ssa = manifest(
        &server,
        "migrated.yaml",
        &configmap("migrated", &[("key", "b")]),
    );
    server.ok(&["apply", "--server-side", "-f", &ssa]);
    assert_eq!(get(&server, "migrated")["data"], json!({"key": "b"}));
    server.stop();
}
