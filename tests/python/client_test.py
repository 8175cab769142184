#!/usr/bin/env python3
"""The official Python `kubernetes` client against `coracle server`.

A second real client beside kubectl. The Python client deserialises every response into its
generated models, so a field of the wrong type or a missing required field fails here even where
kubectl is lenient. Run against a server whose data dir holds the busybox test image:

    python3 tests/python/client_test.py --kubeconfig DATA/kubeconfig [--namespace default]

Exits 0 when every check passed and prints the first failure otherwise.
"""

import argparse
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

POD = "pyclient"
POD_MANIFEST = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": POD, "labels": {"app": POD}},
    "spec": {
        "terminationGracePeriodSeconds": 1,
        "initContainers": [
            {
                "name": "init",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo init-done; sleep 3"],
            }
        ],
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo hello from main; sleep 3600"],
            }
        ],
    },
}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def step(name):
    print(f"--- {name}", flush=True)


def status_text(pod):
    """STATUS as `kubectl get pods` shows it, enough for Init:N/M and the phase."""
    for i, s in enumerate(pod.status.init_container_statuses or []):
        if s.state and s.state.terminated and s.state.terminated.exit_code == 0:
            continue
        total = len(pod.spec.init_containers or [])
        if s.state and s.state.waiting and s.state.waiting.reason not in (None, "PodInitializing"):
            return f"Init:{s.state.waiting.reason}"
        return f"Init:{i}/{total}"
    return pod.status.phase


def watch_pod(v1, ns, seen, done):
    """Collects (event type, STATUS) of our pod until it runs with main started."""
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, ns, timeout_seconds=60):
        pod = event["object"]
        check(isinstance(pod, client.V1Pod), f"watch object is {type(pod)}")
        if pod.metadata.name != POD:
            continue
        seen.append((event["type"], status_text(pod)))
        statuses = pod.status.container_statuses or []
        if pod.status.phase == "Running" and any(s.state.running for s in statuses):
            w.stop()
    done.set()


def wait_until(what, predicate, secs):
    deadline = time.monotonic() + secs
    while True:
        value = predicate()
        if value:
            return value
        check(time.monotonic() < deadline, f"timed out waiting for {what}")
        time.sleep(0.2)


def discovery():
    step("version and discovery")
    version = client.VersionApi().get_code()  # GET /version/, with the slash
    check(version.major == "1" and version.minor == "33", f"version {version}")
    resources = client.CoreV1Api().get_api_resources()
    names = {r.name for r in resources.resources}
    for name in ("pods", "pods/log", "pods/status", "events", "namespaces", "nodes"):
        check(name in names, f"{name} not in /api/v1 discovery: {sorted(names)}")


def lifecycle(v1, ns):
    step("list pods (empty namespace)")
    pods = v1.list_namespaced_pod(ns)
    check(isinstance(pods, client.V1PodList), "list is not a V1PodList")
    check(pods.metadata.resource_version, "list has no resourceVersion")
    check(all(p.metadata.name != POD for p in pods.items), f"{POD} exists before the test")
    v1.list_pod_for_all_namespaces()

    step("watch in the background, then create the pod")
    seen, done = [], threading.Event()
    watcher = threading.Thread(target=watch_pod, args=(v1, ns, seen, done), daemon=True)
    watcher.start()
    time.sleep(0.5)  # the watch is established before the pod exists, so ADDED comes first
    created = v1.create_namespaced_pod(ns, POD_MANIFEST)
    check(created.metadata.name == POD, "create returned another pod")
    check(created.metadata.uid, "created pod has no uid")
    check(created.status.phase == "Pending", f"created pod is {created.status.phase}")
    check(created.status.qos_class == "BestEffort", f"created pod's qosClass {created.status.qos_class}")
    check(created.spec.init_containers[0].image_pull_policy == "IfNotPresent", "pull policy lost")

    step("the watch sees ADDED, then MODIFIED through Init:0/1 to Running")
    check(done.wait(60), f"watch never saw {POD} Running: {seen}")
    check(seen and seen[0][0] == "ADDED", f"first event is not ADDED: {seen}")
    check(all(t == "MODIFIED" for t, _ in seen[1:]), f"unexpected events: {seen}")
    check(("MODIFIED", "Init:0/1") in seen, f"no MODIFIED event in Init:0/1: {seen}")
    check(seen[-1] == ("MODIFIED", "Running"), f"last event is not Running: {seen}")
    print(f"    events seen: {seen}")

    step("read the pod's status fields")
    pod = v1.read_namespaced_pod(POD, ns)
    st = pod.status
    check(st.phase == "Running", f"phase {st.phase}")
    check(st.start_time is not None, "no startTime")
    check(st.qos_class == "BestEffort", f"qosClass {st.qos_class}")
    conditions = {c.type: c.status for c in st.conditions}
    for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled"):
        check(conditions.get(kind) == "True", f"condition {kind}: {conditions}")
    init = st.init_container_statuses[0]
    # Upstream marks an init container that completed as ready.
    check(init.name == "init" and init.ready is True, f"init status {init}")
    check(init.state.terminated.reason == "Completed", f"init state {init.state}")
    check(init.state.terminated.exit_code == 0, f"init exit {init.state}")
    main = st.container_statuses[0]
    check(main.name == "main" and main.ready and main.started, f"main status {main}")
    check(main.state.running.started_at is not None, "main has no startedAt")
    check(main.restart_count == 0, f"main restarts {main.restart_count}")
    check(main.image_id, "main has no imageID")
    check((main.container_id or "").count("://") == 1, f"containerID {main.container_id}")

    step("read the logs of each container")
    log = v1.read_namespaced_pod_log(POD, ns, container="init")
    check(log.startswith("init-done\n"), f"init log {log!r}")
    log = wait_until(
        "main's log", lambda: v1.read_namespaced_pod_log(POD, ns, container="main"), 10
    )
    check(log == "hello from main\n", f"main log {log!r}")

    step("list events")
    events = v1.list_namespaced_event(ns)
    mine = [e for e in events.items if e.involved_object.name == POD]
    reasons = {e.reason for e in mine}
    for reason in ("Scheduled", "Pulled", "Created", "Started"):
        check(reason in reasons, f"no {reason} event: {sorted(reasons)}")
    check(all(e.involved_object.kind == "Pod" for e in mine), "event about another kind")
    started = [e.message for e in mine if e.reason == "Started"]
    check("Started container main" in started, f"Started events {started}")

    step("delete the pod and wait for it to go")
    deleted = v1.delete_namespaced_pod(POD, ns)
    check(deleted is not None, "delete returned nothing")

    def gone():
        try:
            v1.read_namespaced_pod(POD, ns)
            return False
        except ApiException as e:
            return e.status == 404

    wait_until(f"{POD} to be deleted", gone, 30)
    check(all(p.metadata.name != POD for p in v1.list_namespaced_pod(ns).items), "pod listed")


def errors(v1, ns):
    step("a missing pod is a 404 ApiException with a Status body")
    try:
        v1.read_namespaced_pod("no-such-pod", ns)
        check(False, "reading a missing pod succeeded")
    except ApiException as e:
        check(e.status == 404, f"status {e.status}")
        check('pods \\"no-such-pod\\" not found' in e.body or 'pods "no-such-pod" not found' in e.body, e.body)
        check('"reason":"NotFound"' in e.body.replace(" ", ""), e.body)

    step("an invalid pod is a 422 naming the field")
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {
            "initContainers": [{"image": "busybox"}],
            "containers": [{"name": "a", "image": "busybox"}],
        },
    }
    try:
        v1.create_namespaced_pod(ns, bad)
        check(False, "creating an invalid pod succeeded")
    except ApiException as e:
        check(e.status == 422, f"status {e.status}: {e.body}")
        check("spec.initContainers[0].name" in e.body, e.body)
        check("Required value" in e.body, e.body)
        check('"reason":"Invalid"' in e.body.replace(" ", ""), e.body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", default="default")
    args = parser.parse_args()

    config.load_kube_config(config_file=args.kubeconfig)
    v1 = client.CoreV1Api()
    try:
        discovery()
        errors(v1, args.namespace)
        lifecycle(v1, args.namespace)
    except (AssertionError, ApiException) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        try:
            v1.delete_namespaced_pod(POD, args.namespace)
        except ApiException:
            pass
        return 1
    print("ok: python kubernetes client passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
