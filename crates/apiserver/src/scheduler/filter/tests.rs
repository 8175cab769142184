use serde_json::json;

use super::*;

fn node(extra: serde_json::Value) -> Node {
    let mut n = json!({
        "metadata": {"name": "node1", "labels": {"kubernetes.io/hostname": "node1", "zone": "3"}},
        "spec": {},
        "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "3",
                                   "ephemeral-storage": "10Gi"}},
    });
    merge(&mut n, extra);
    serde_json::from_value(n).unwrap()
}

fn pod(spec: serde_json::Value) -> Pod {
    let mut s = json!({"containers": [{"name": "c", "image": "busybox"}]});
    merge(&mut s, spec);
    serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": s})).unwrap()
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn requesting(cpu: &str, memory: &str) -> serde_json::Value {
    json!({"containers": [{"name": "c", "image": "busybox",
                           "resources": {"requests": {"cpu": cpu, "memory": memory}}}]})
}

fn message(p: &Pod, n: &Node, on_node: &[Pod]) -> Option<String> {
    unschedulable_message(p, n, on_node)
}

#[test]
fn a_node_selector_the_node_lacks_is_unresolvable_by_preemption() {
    let p = pod(json!({"nodeSelector": {"disk": "ssd"}}));
    assert_eq!(
        message(&p, &node(json!({})), &[]).unwrap(),
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    let labelled = node(json!({"metadata": {"labels": {"disk": "ssd"}}}));
    assert_eq!(message(&p, &labelled, &[]), None);
}

fn affinity(terms: serde_json::Value) -> Pod {
    pod(json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
}

#[test]
fn required_node_affinity_operators_match_as_upstream_reads_them() {
    let n = node(json!({}));
    let fits = |terms| filter(&affinity(terms), &n, &[]).is_ok();
    assert!(fits(
        json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["3", "4"]}]}])
    ));
    assert!(!fits(
        json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["3"]}]}])
    ));
    assert!(fits(
        json!([{"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["x"]}]}])
    ));
    assert!(fits(
        json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}])
    ));
    assert!(fits(
        json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}])
    ));
    assert!(fits(
        json!([{"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["2"]}]}])
    ));
    assert!(!fits(
        json!([{"matchExpressions": [{"key": "zone", "operator": "Lt", "values": ["3"]}]}])
    ));
    // Terms are ORed, requirements inside one ANDed.
    assert!(fits(json!([
        {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "zone", "operator": "Exists"},
                              {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node1"]}]},
    ])));
    assert!(fits(
        json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["other"]}]}])
    ));
    assert!(fits(
        json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node1"]}]}])
    ));
}

#[test]
fn affinity_to_another_node_by_name_is_reported_by_the_prefilter() {
    let p = affinity(json!([{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["other"]}]}]));
    assert_eq!(
        message(&p, &node(json!({})), &[]).unwrap(),
        "0/1 nodes are available: 1 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
}

#[test]
fn an_untolerated_taint_is_named_with_its_value() {
    let tainted = node(json!({"spec": {"taints": [
        {"key": "soft", "value": "x", "effect": "PreferNoSchedule"},
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}));
    assert_eq!(
        message(&pod(json!({})), &tainted, &[]).unwrap(),
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    let equal = pod(json!({"tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}));
    assert_eq!(message(&equal, &tainted, &[]), None);
    let every = pod(json!({"tolerations": [{"operator": "Exists"}]}));
    assert_eq!(message(&every, &tainted, &[]), None);
    let wrong_effect = pod(json!({"tolerations": [
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]}));
    assert!(message(&wrong_effect, &tainted, &[]).is_some());
}

#[test]
fn a_cordoned_node_takes_only_pods_tolerating_unschedulable() {
    let cordoned = node(json!({"spec": {"unschedulable": true}}));
    assert!(message(&pod(json!({})), &cordoned, &[])
        .unwrap()
        .starts_with("0/1 nodes are available: 1 node(s) were unschedulable."));
    let tolerant = pod(json!({"tolerations": [
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}));
    assert_eq!(message(&tolerant, &cordoned, &[]), None);
}

#[test]
fn requests_beyond_what_the_node_has_left_are_insufficient_and_preemption_finds_no_victims() {
    let n = node(json!({}));
    let big = pod(requesting("100m", "2Gi"));
    assert_eq!(
        message(&big, &n, &[]).unwrap(),
        "0/1 nodes are available: 1 Insufficient memory. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    let running = pod(requesting("1500m", "512Mi"));
    let second = pod(requesting("600m", "600Mi"));
    assert_eq!(
        message(&second, &n, std::slice::from_ref(&running)).unwrap(),
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    assert_eq!(
        message(&pod(requesting("500m", "512Mi")), &n, &[running]),
        None
    );
}

#[test]
fn the_pod_count_is_limited_by_allocatable_pods() {
    let n = node(json!({}));
    let three = vec![pod(json!({})), pod(json!({})), pod(json!({}))];
    assert!(message(&pod(json!({})), &n, &three)
        .unwrap()
        .starts_with("0/1 nodes are available: 1 Too many pods."));
}

#[test]
fn effective_requests_take_the_larger_of_init_and_app_plus_sidecars_then_overhead() {
    let p = pod(json!({
        "initContainers": [
            {"name": "sidecar", "image": "b", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
            {"name": "init", "image": "b",
             "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}},
        ],
        "containers": [{"name": "c", "image": "b",
                        "resources": {"requests": {"cpu": "200m", "memory": "200Mi"}}}],
        "overhead": {"cpu": "10m"},
    }));
    let requests = pod_requests(p.spec.as_ref().unwrap());
    // cpu: max(100m + 1, 100m + 200m) + 10m; memory: max(110Mi, 300Mi).
    assert_eq!(requests["cpu"], 1110);
    assert_eq!(requests["memory"], 300 * 1024 * 1024);
}

#[test]
fn a_host_port_in_use_on_the_node_is_not_free() {
    let n = node(json!({}));
    let with_port = |port: i32, ip: &str| {
        pod(json!({"containers": [{"name": "c", "image": "b",
            "ports": [{"containerPort": 80, "hostPort": port, "hostIP": ip}]}]}))
    };
    let running = with_port(8080, "");
    assert_eq!(
        message(
            &with_port(8080, "10.0.0.1"),
            &n,
            std::slice::from_ref(&running)
        )
        .unwrap(),
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    assert_eq!(message(&with_port(8081, ""), &n, &[running]), None);
}

#[test]
fn the_first_rejecting_plugin_decides_the_reasons() {
    let tainted = node(json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}));
    let p = pod(json!({"nodeSelector": {"disk": "ssd"},
                       "containers": [{"name": "c", "image": "b",
                                       "resources": {"requests": {"memory": "9Gi"}}}]}));
    assert_eq!(
        message(&p, &tainted, &[]).unwrap(),
        "0/1 nodes are available: 1 node(s) had untolerated taint {k: }. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
}
