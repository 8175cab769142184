//! End to end with the real kubectl: the tutorial flow against `coracle server`.
//!
//! Needs root (real containers), `/usr/bin/kubectl` and the busybox test image.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod server_support;

use server_support::*;

const INIT_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: init
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo init-done; sleep 4']
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo hello from main; sleep 3600']
";

#[test]
fn kubectl_runs_the_tutorial_flow_and_a_restart_mid_init_loses_nothing() {
    let server = Server::start(data_dir_with_busybox());
    let manifest = server.data.path().join("pod.yaml");
    std::fs::write(&manifest, INIT_POD).unwrap();
    let manifest = manifest.to_str().unwrap().to_owned();

    // get -w in the background sees the whole sequence.
    let mut watch = Command::new("kubectl")
        .args(["get", "pods", "-w", "--request-timeout=60s"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.data.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    assert!(server
        .ok(&["apply", "-f", &manifest])
        .contains("pod/web created"));
    server.wait_for(&["get", "pods"], "Init:0/1", 20);

    // Restart the server while the init container runs.
    let port = server.port;
    let data = server.stop();
    let server = Server::start_on(data, port);
    server.wait_for(&["get", "pods"], "Running", 40);
    // The init container ran once, across the restart.
    assert_eq!(server.ok(&["logs", "web", "-c", "init"]), "init-done\n");
    assert_eq!(
        server.ok(&["logs", "web", "-c", "main"]),
        "hello from main\n"
    );

    let describe = server.ok(&["describe", "pod", "web"]);
    assert!(describe.contains("Init Containers:"), "{describe}");
    assert!(describe.contains("Reason:       Completed"), "{describe}");
    assert!(describe.contains("Started container main"), "{describe}");
    assert!(describe.contains("Created container: init"), "{describe}");

    // A changed manifest is applied as a patch.
    let changed = INIT_POD.replace("app: web}", "app: web, tier: front}");
    std::fs::write(server.data.path().join("pod.yaml"), changed).unwrap();
    assert!(server
        .ok(&["apply", "-f", &manifest])
        .contains("pod/web configured"));
    assert!(server
        .ok(&["get", "pod", "web", "--show-labels"])
        .contains("app=web,tier=front"));

    // Validation errors read as kubectl prints upstream's.
    let bad = server.data.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  initContainers: [{image: busybox}]\n  containers: [{name: a, image: busybox}]\n").unwrap();
    let out = server.kubectl(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "The Pod \"bad\" is invalid: spec.initContainers[0].name: Required value"
    );

    assert!(server
        .ok(&["delete", "pod", "web"])
        .contains("pod \"web\" deleted"));
    assert!(server.ok(&["get", "pods"]).is_empty());

    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(lines.contains("Init:0/1"), "{lines}");
    server.stop();
}

const TWO_INIT_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: steps
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: first, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '1']}
  - {name: second, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '1']}
  containers:
  - {name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '3600']}
";

#[test]
fn kubectl_get_watch_shows_each_init_step_then_pod_initializing_then_running() {
    let server = Server::start(data_dir_with_busybox());
    let manifest = server.data.path().join("steps.yaml");
    std::fs::write(&manifest, TWO_INIT_POD).unwrap();

    let mut watch = server
        .command(&["get", "pods", "-w", "--request-timeout=60s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    server.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    server.wait_for(&["get", "pods"], "Running", 30);
    std::thread::sleep(Duration::from_millis(500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();

    // Each status the kubelet goes through reaches the watch, in order, as upstream's
    // kubelet publishes one at the top of every sync.
    let statuses: Vec<&str> = lines
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let mut want = ["Init:0/2", "Init:1/2", "PodInitializing", "Running"].into_iter();
    let mut next = want.next();
    for status in &statuses {
        if Some(*status) == next {
            next = want.next();
        }
    }
    assert_eq!(next, None, "statuses seen: {statuses:?}");
    server.ok(&["delete", "pod", "steps"]);
    server.stop();
}

#[test]
fn kubectl_create_generators_send_protobuf_and_explain_reads_the_schemas() {
    let server = Server::start(tempfile::tempdir().unwrap());

    assert_eq!(
        server.ok(&[
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast"
        ]),
        "configmap/settings created\n"
    );
    assert_eq!(
        server.ok(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.mode}"
        ]),
        "fast"
    );
    assert_eq!(
        server.ok(&[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=hunter2"
        ]),
        "secret/creds created\n"
    );
    assert_eq!(
        server.ok(&[
            "get",
            "secret",
            "creds",
            "-o",
            "jsonpath={.type} {.data.password}"
        ]),
        "Opaque aHVudGVyMg=="
    );
    assert_eq!(
        server.ok(&["create", "namespace", "team-a"]),
        "namespace/team-a created\n"
    );
    assert_eq!(
        server.ok(&["create", "serviceaccount", "robot", "-n", "team-a"]),
        "serviceaccount/robot created\n"
    );
    assert!(server
        .ok(&["get", "serviceaccounts", "-n", "team-a"])
        .contains("robot"));

    // explain reads the schemas of /openapi/v3.
    let explain = server.ok(&["explain", "pod.spec.initContainers"]);
    assert!(
        explain.contains("FIELD: initContainers <[]Container>"),
        "{explain}"
    );
    assert!(explain.contains("Init containers are\n"), "{explain}");
    assert!(explain.contains("  restartPolicy\t<string>"), "{explain}");

    // A name the server refuses reads as upstream's validation error.
    let out = server.kubectl(&["create", "configmap", "Bad_Name"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
        "{stderr}"
    );
    server.stop();
}

#[test]
fn the_garbage_collector_follows_owner_references_and_propagation_policies() {
    let server = Server::start(tempfile::tempdir().unwrap());
    let dir = server.data.path().to_owned();
    let uid_of = |name: &str| server.ok(&["get", "cm", name, "-o", "jsonpath={.metadata.uid}"]);
    let dependent = |name: &str, owner: &str, block: bool| {
        let uid = uid_of(owner);
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {uid}, blockOwnerDeletion: {block}}}\ndata: {{a: b}}\n"
            ),
        )
        .unwrap();
        server.ok(&["apply", "-f", file.to_str().unwrap()]);
    };
    let gone = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.kubectl(&["get", "cm", name]).status.success() {
            assert!(Instant::now() < deadline, "{name} was not collected");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for name in ["owner-1", "owner-2", "owner-3"] {
        server.ok(&["create", "configmap", name]);
    }

    // Background (kubectl's default): the dependent goes after its owner.
    dependent("dep-1", "owner-1", false);
    server.ok(&["delete", "cm", "owner-1"]);
    gone("dep-1");

    // Orphan: the dependent stays, without its reference.
    dependent("dep-2", "owner-2", false);
    server.ok(&["delete", "cm", "owner-2", "--cascade=orphan"]);
    gone("owner-2");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        server.ok(&[
            "get",
            "cm",
            "dep-2",
            "-o",
            "jsonpath={.metadata.ownerReferences}"
        ]),
        ""
    );

    // Foreground: the dependent goes first, then the owner.
    dependent("dep-3", "owner-3", true);
    server.ok(&["delete", "cm", "owner-3", "--cascade=foreground"]);
    gone("dep-3");
    gone("owner-3");

    // An owner of a kind this server does not serve is never taken as gone.
    let file = dir.join("foreign.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: foreign\n  ownerReferences:\n  - {apiVersion: apps/v1, kind: ReplicaSet, name: rs, uid: 6d5f3c1e-0000-4000-8000-000000000000}\n").unwrap();
    server.ok(&["apply", "-f", file.to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(server.kubectl(&["get", "cm", "foreign"]).status.success());
    server.stop();
}
