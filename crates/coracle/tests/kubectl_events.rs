//! End to end with the real kubectl: one set of events, served as `v1` and `events.k8s.io/v1`.
//!
//! Needs root (real containers), `/usr/bin/kubectl` and the busybox test image.

use std::io::Read;
use std::process::Stdio;

mod server_support;

use server_support::*;

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'sleep 3600']
";

/// An event a controller reports through the new API.
const NEW_EVENT: &str = "apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: web.greeting
  namespace: default
eventTime: 2026-01-02T03:04:05.000000Z
reportingController: example.com/greeter
reportingInstance: greeter-1
action: Greet
reason: Greeted
type: Normal
note: said hello to the pod
regarding:
  apiVersion: v1
  kind: Pod
  name: web
  namespace: default
  uid: POD_UID
";

#[test]
fn kubelet_events_and_new_api_events_are_one_set_in_both_versions() {
    let server = Server::start(data_dir_with_busybox());

    // A watch through events.k8s.io, started before the pod, hears the kubelet's events.
    let mut watch = server
        .command(&[
            "get",
            "events.events.k8s.io",
            "-w",
            "--request-timeout=90s",
            "-o",
            "custom-columns=REASON:.reason,REGARDING:.regarding.name,NOTE:.note",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubectl get -w");

    let manifest = server.data.path().join("pod.yaml");
    std::fs::write(&manifest, POD).unwrap();
    let manifest = manifest.to_str().unwrap().to_owned();
    server.ok(&["apply", "-f", &manifest]);
    server.wait_for(&["get", "pods"], "Running", 60);
    server.wait_for(&["get", "events"], "Started", 20);

    // The kubelet's v1 events, listed through both APIs with the same columns.
    let new_api = server.ok(&["get", "events.events.k8s.io"]);
    let core = server.ok(&["get", "events"]);
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(new_api.contains(reason), "{reason} missing: {new_api}");
        assert!(core.contains(reason), "{reason} missing: {core}");
    }
    let header = |out: &str| out.lines().next().unwrap_or("").to_owned();
    assert_eq!(header(&new_api), header(&core));
    assert!(header(&new_api).starts_with("LAST SEEN"), "{new_api}");

    // The new API's fields, converted from the stored v1 event.
    let started = server.ok(&[
        "get",
        "events.events.k8s.io",
        "--field-selector=reason=Started,regarding.name=web",
        "-o",
        "jsonpath={.items[0].regarding.kind} {.items[0].note} {.items[0].reportingController}",
    ]);
    assert!(
        started.starts_with("Pod Started container main kubelet"),
        "{started}"
    );
    let refused = server.kubectl(&[
        "get",
        "events.events.k8s.io",
        "--field-selector=involvedObject.name=web",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("field label not supported: involvedObject.name"),
        "{}",
        stderr(&refused)
    );

    // An event created through events.k8s.io/v1 is a v1 event too. describe finds it by
    // `involvedObject` field selectors, the pod's uid among them.
    let uid = server.ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]);
    let new_event = NEW_EVENT.replace("POD_UID", &uid);
    let created = server.kubectl_with_input(&["create", "-f", "-"], new_event.as_bytes());
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stdout(&created).contains("event.events.k8s.io/web.greeting created"),
        "{}",
        stdout(&created)
    );
    let core = server.ok(&["get", "events"]);
    assert!(core.contains("Greeted"), "{core}");
    assert!(core.contains("said hello to the pod"), "{core}");
    let v1 = server.ok(&[
        "get",
        "events",
        "web.greeting",
        "-o",
        "jsonpath={.involvedObject.name} {.message} {.reportingComponent} {.action}",
    ]);
    assert_eq!(v1, "web said hello to the pod example.com/greeter Greet");
    let describe = server.ok(&["describe", "pod", "web"]);
    assert!(describe.contains("Greeted"), "{describe}");
    assert!(describe.contains("said hello to the pod"), "{describe}");
    assert!(describe.contains("Started container main"), "{describe}");

    // Patch and delete through the new API act on the one stored event.
    server.ok(&[
        "patch",
        "events.events.k8s.io",
        "web.greeting",
        "--type=merge",
        "-p",
        r#"{"note": "said hello again"}"#,
    ]);
    let v1 = server.ok(&["get", "events", "web.greeting", "-o", "jsonpath={.message}"]);
    assert_eq!(v1, "said hello again");
    server.ok(&["delete", "events.events.k8s.io", "web.greeting"]);
    let gone = server.kubectl(&["get", "events", "web.greeting"]);
    assert!(!gone.status.success());

    // Upstream's validation of new events.
    let invalid = new_event
        .replace("name: web.greeting", "name: web.bad")
        .replace("reportingInstance: greeter-1\n", "");
    let refused = server.kubectl_with_input(&["create", "-f", "-"], invalid.as_bytes());
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("\"web.bad\" is invalid: reportingInstance: Required value"),
        "{}",
        stderr(&refused)
    );

    // The watch heard the kubelet's events, in the new API's shape.
    let _ = watch.kill();
    let _ = watch.wait();
    let mut heard = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut heard)
        .unwrap();
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(heard.contains(reason), "{reason} not heard: {heard}");
    }
    assert!(heard.contains("Started container main"), "{heard}");
}
