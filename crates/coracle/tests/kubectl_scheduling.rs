//! End to end with the real kubectl: the scheduler's and admission's work for the one node
//! of `coracle server`, read as `kubectl describe` and `kubectl get -o yaml` show it.
//!
//! Needs root (real containers), `/usr/bin/kubectl` and the busybox test image.

mod server_support;

use server_support::*;

fn pod(name: &str, spec_extra: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{spec_extra}  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
{container_extra}"
    )
}

fn create(server: &Server, manifest: &str) -> std::process::Output {
    server.kubectl_with_input(&["create", "-f", "-"], manifest.as_bytes())
}

fn node_name(server: &Server) -> String {
    let name = server.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    assert!(!name.is_empty());
    name
}

#[test]
fn a_pod_whose_node_selector_the_node_lacks_waits_until_the_node_is_labelled() {
    let server = Server::start(data_dir_with_busybox());
    let node = node_name(&server);
    let manifest = pod("ssd", "  nodeSelector: {disk: ssd}\n", "");
    assert!(create(&server, &manifest).status.success());

    let message = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
                   preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
    let describe = server.wait_for(&["describe", "pod", "ssd"], "FailedScheduling", 20);
    assert!(
        describe.contains("Warning  FailedScheduling")
            && describe.contains("default-scheduler")
            && describe.contains(message),
        "{describe}"
    );
    assert!(describe.contains("PodScheduled   False"), "{describe}");
    assert!(describe.contains("Node:             <none>"), "{describe}");
    let condition = server.ok(&[
        "get",
        "pod",
        "ssd",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}|\
         {.status.conditions[?(@.type==\"PodScheduled\")].message}",
    ]);
    assert_eq!(condition, format!("Unschedulable|{message}"));
    assert!(server.ok(&["get", "pod", "ssd"]).contains("Pending"));

    // The kubelet's labels are there for selectors to use.
    let labels = server.ok(&["get", "node", &node, "--show-labels"]);
    for label in [
        "beta.kubernetes.io/arch=",
        "beta.kubernetes.io/os=linux",
        "kubernetes.io/arch=",
        "kubernetes.io/os=linux",
        &format!("kubernetes.io/hostname={node}"),
    ] {
        assert!(labels.contains(label), "{label} missing: {labels}");
    }

    server.ok(&["label", "node", &node, "disk=ssd"]);
    server.wait_for(&["get", "pod", "ssd"], "Running", 30);
    let describe = server.ok(&["describe", "pod", "ssd"]);
    assert!(
        describe.contains(&format!("Successfully assigned default/ssd to {node}")),
        "{describe}"
    );
    assert!(
        describe.contains("PodScheduled                True"),
        "{describe}"
    );

    server.ok(&["delete", "pod", "ssd", "--wait=true"]);
}

#[test]
fn a_pod_asking_for_more_memory_than_the_node_has_stays_pending_with_insufficient_memory() {
    let server = Server::start(data_dir_with_busybox());
    let manifest = pod(
        "big",
        "",
        "    resources:\n      requests: {memory: 64Ti}\n",
    );
    assert!(create(&server, &manifest).status.success());
    let describe = server.wait_for(&["describe", "pod", "big"], "FailedScheduling", 20);
    assert!(
        describe.contains(
            "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are \
             available: 1 No preemption victims found for incoming pod."
        ),
        "{describe}"
    );
    // A pod that fits is still started at once beside it.
    let small = pod(
        "small",
        "",
        "    resources:\n      requests: {memory: 1Mi}\n",
    );
    assert!(create(&server, &small).status.success());
    server.wait_for(&["get", "pod", "small"], "Running", 30);
    assert!(server.ok(&["get", "pod", "big"]).contains("Pending"));

    server.ok(&["delete", "pod", "big", "small", "--wait=true"]);
}

#[test]
fn admission_adds_default_tolerations_and_the_service_account_and_refuses_a_missing_one() {
    let server = Server::start(data_dir_with_busybox());
    // Created without running it: the scheduler leaves a pod of another scheduler alone.
    let manifest = pod("plain", "  schedulerName: elsewhere\n", "");
    assert!(create(&server, &manifest).status.success());
    let yaml = server.ok(&["get", "pod", "plain", "-o", "yaml"]);
    for line in [
        "serviceAccount: default",
        "serviceAccountName: default",
        "key: node.kubernetes.io/not-ready",
        "key: node.kubernetes.io/unreachable",
        "tolerationSeconds: 300",
        "effect: NoExecute",
        "operator: Exists",
    ] {
        assert!(yaml.contains(line), "{line} missing: {yaml}");
    }
    assert!(!yaml.contains("nodeName"), "{yaml}");

    let refused = create(&server, &pod("x", "  serviceAccountName: nosuch\n", ""));
    assert!(!refused.status.success());
    assert_eq!(
        stderr(&refused).trim(),
        "Error from server (Forbidden): error when creating \"STDIN\": pods \"x\" is forbidden: \
         error looking up service account default/nosuch: serviceaccount \"nosuch\" not found"
    );

    server.ok(&["delete", "pod", "plain", "--wait=true"]);
}
