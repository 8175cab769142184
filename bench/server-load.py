#!/usr/bin/env python3
"""The client side of bench/server.sh: talks to `coracle server` over HTTPS with the admin
token, standard library only. Every request goes to 127.0.0.1 and every loop is bounded.

  startup  BIN DATA PORT              start the server, time to the first 200 on /readyz
  rss      PID...                     VmRSS and VmHWM (kB) of one process; Pss (kB) of the rest
  create   DATA PORT N PREFIX KIND    create N pods (KIND: running | unscheduled)
  wait     DATA PORT N                wait until N pods are Running
  gone     DATA PORT                  delete every pod in default, wait until none is left
  watch    DATA PORT WATCHERS CHANGES SERVER_PID
                                      WATCHERS watch streams, CHANGES label patches: the time
                                      from each patch to its event on every stream

Results are printed as one JSON object on stdout.
"""

import asyncio
import http.client
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import time

NS = "default"


def tls(data):
    ctx = ssl.create_default_context(cafile=os.path.join(data, "pki", "ca.crt"))
    ctx.check_hostname = False
    return ctx


def token(data):
    with open(os.path.join(data, "pki", "token")) as f:
        return f.read().strip()


class Api:
    """One keep-alive HTTPS connection to the server."""

    def __init__(self, data, port):
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls(data), timeout=60)
        self.headers = {"Authorization": f"Bearer {token(data)}", "Accept": "application/json"}

    def call(self, method, path, body=None, content_type="application/json"):
        headers = dict(self.headers)
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = content_type
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return json.loads(payload) if payload else None


def startup(binary, data, port):
    """Seconds from spawning `coracle server` to its first 200 on /readyz."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # the CA does not exist yet on a first start
    start = time.monotonic()
    server = subprocess.Popen(
        [binary, "--data-dir", data, "server", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.monotonic() - start < 30:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=unverified, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return {"ready_s": time.monotonic() - start}
            except OSError:
                pass
            time.sleep(0.001)
        raise RuntimeError("coracle server not ready within 30 s")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss(pid, *others):
    return {
        "rss_kb": status_kb(pid, "VmRSS"),
        "hwm_kb": status_kb(pid, "VmHWM"),
        "others": len(others),
        "others_pss_kb": sum(pss_kb(p) for p in others),
    }


def pod(name, kind):
    """A busybox pod: `running` ones run `sleep` here; `unscheduled` ones are bound to a node
    with no kubelet, so they stay Pending as objects in the store only."""
    spec = {
        "terminationGracePeriodSeconds": 1,
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
            }
        ],
    }
    if kind == "running":
        # No pod network: the bench shares this machine's coracle0 bridge with whatever else
        # runs here, and 100 addresses from another data dir's allocator would collide.
        spec["hostNetwork"] = True
    else:
        spec["nodeName"] = "no-such-node"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "kind": kind}},
        "spec": spec,
    }


def create(data, port, n, prefix, kind):
    api = Api(data, port)
    start = time.monotonic()
    for i in range(n):
        api.call("POST", f"/api/v1/namespaces/{NS}/pods", pod(f"{prefix}-{i}", kind))
    return {"created": n, "create_s": time.monotonic() - start}


def wait_running(data, port, n):
    api = Api(data, port)
    start = time.monotonic()
    while time.monotonic() - start < 600:
        items = api.call("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=kind%3Drunning")["items"]
        running = sum(1 for p in items if p.get("status", {}).get("phase") == "Running")
        if running >= n:
            return {"running": running, "wait_s": time.monotonic() - start}
        time.sleep(0.5)
    raise RuntimeError(f"only {running} of {n} pods Running after 600 s")


def gone(data, port):
    """Deletes every pod. Those bound to the node with no kubelet are deleted with grace
    period 0, as upstream's pod garbage collector deletes pods of a node that does not exist;
    the running ones are stopped by the kubelet first."""
    api = Api(data, port)
    start = time.monotonic()
    for p in api.call("GET", f"/api/v1/namespaces/{NS}/pods")["items"]:
        force = "?gracePeriodSeconds=0" if p["spec"].get("nodeName") == "no-such-node" else ""
        try:
            api.call("DELETE", f"/api/v1/namespaces/{NS}/pods/{p['metadata']['name']}{force}")
        except RuntimeError as e:
            if ": 404 " not in str(e):  # already gone
                raise
    while time.monotonic() - start < 300:
        if not api.call("GET", f"/api/v1/namespaces/{NS}/pods")["items"]:
            return {"deleted_s": time.monotonic() - start}
        time.sleep(0.5)
    raise RuntimeError("pods still present 300 s after their deletion")


async def watcher(data, port, rv, marks, ready):
    """One watch stream; records when each `bench-change=<i>` label arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls(data))
    writer.write(
        (
            f"GET /api/v1/namespaces/{NS}/pods?watch=1&resourceVersion={rv} HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {token(data)}\r\n"
            "Accept: application/json\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await reader.read(65536)
    ready.set_result(None) if not ready.done() else None
    seen = {}
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            now = time.monotonic()
            buf = buf[-200:] + chunk
            for i in list(marks):
                if i not in seen and f'"bench-change":"{i}"'.encode() in buf:
                    seen[i] = now
                    marks[i].append(now)
    finally:
        writer.close()


async def watch_bench(data, port, watchers, changes, server_pid):
    api = Api(data, port)
    rv = api.call("GET", f"/api/v1/namespaces/{NS}/pods?limit=1")["metadata"]["resourceVersion"]
    marks = {i: [] for i in range(changes)}
    readies = [asyncio.get_running_loop().create_future() for _ in range(watchers)]
    tasks = [asyncio.create_task(watcher(data, port, rv, marks, r)) for r in readies]
    await asyncio.wait_for(asyncio.gather(*readies), 30)
    await asyncio.sleep(0.5)
    memory = rss(server_pid)

    target = api.call("GET", f"/api/v1/namespaces/{NS}/pods?limit=1")["items"][0]["metadata"]["name"]
    worst, typical = [], []
    for i in range(changes):
        sent = time.monotonic()
        await asyncio.to_thread(
            api.call,
            "PATCH",
            f"/api/v1/namespaces/{NS}/pods/{target}",
            {"metadata": {"labels": {"bench-change": str(i)}}},
            "application/merge-patch+json",
        )
        deadline = sent + 10
        while len(marks[i]) < watchers and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        if len(marks[i]) < watchers:
            raise RuntimeError(f"change {i} reached {len(marks[i])} of {watchers} watchers")
        latencies = [t - sent for t in marks[i]]
        worst.append(max(latencies))
        typical.append(statistics.median(latencies))
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    return {
        "watchers": watchers,
        "changes": changes,
        "all_median_s": statistics.median(worst),
        "all_max_s": max(worst),
        "each_median_s": statistics.median(typical),
        "server": memory,
    }


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "startup":
        result = startup(args[0], args[1], int(args[2]))
    elif command == "rss":
        result = rss(*[int(a) for a in args])
    elif command == "create":
        result = create(args[0], int(args[1]), int(args[2]), args[3], args[4])
    elif command == "wait":
        result = wait_running(args[0], int(args[1]), int(args[2]))
    elif command == "gone":
        result = gone(args[0], int(args[1]))
    elif command == "watch":
        result = asyncio.run(
            watch_bench(args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4]))
        )
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
