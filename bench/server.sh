#!/usr/bin/env bash
# Benchmark: `coracle server` as an API server: start-up, memory, a 1000-pod list, watch fan-out.
#
#   ready      from spawning `coracle server` to its first 200 on /readyz (polled every
#              millisecond over TLS), median of BENCH_RUNS starts: a first start (fresh data
#              dir: the CA, keys and token are generated) and restarts of the same data dir.
#   memory     VmRSS and VmHWM of the server process: idle, with 100 pods running, and with
#              1000 pods in the store and 50 watchers. The containers' shims are processes of
#              their own (one per container); their total Pss is shown beside it.
#   list       1000 pods in the store: the 100 running ones (busybox `sleep`, full statuses)
#              and 900 bound to a node that has no kubelet (nodeName: no-such-node), which stay
#              Pending as objects in the store only, as pods bound to a node whose kubelet is
#              down do. Timed with hyperfine: `kubectl get pods` (the table, in kubectl's
#              500-item chunks) and `curl` of the raw JSON list; both include their process's
#              start and a TLS handshake. kubectl against an empty namespace is its own floor.
#   watch      50 watch streams of the namespace (one asyncio client); a label patch on one
#              pod, 20 times: the time from sending the patch to its event on every stream.
#
# Pods are created through the API (POST, one keep-alive connection). The running pods use
# hostNetwork: pod networking would share this machine's coracle0 bridge with tests running
# at the same time, and the addresses of another data dir's allocator would collide.
#
# Goals (issue 4): ready in under 100 ms, idle under 30 MB, a 1000-pod list in under 100 ms.
# Peers: k3s is not packaged here, so its published figures are quoted in bench/README.md.
#
# usage: bench/server.sh                 (as root; BENCH_RUNS, CORACLE_BIN: see lib.sh)
source "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-10}
RUNNING=${BENCH_RUNNING_PODS:-100}
STORED=${BENCH_STORED_PODS:-1000}
WATCHERS=${BENCH_WATCHERS:-50}
LOAD="python3 $BENCH_REPO/bench/server-load.py"
need_packages hyperfine curl python3
command -v kubectl >/dev/null || need_packages kubernetes-client
coracle_binary
busybox_archive
coracle_data_dir
export CORACLE_RUN_DIR=$BENCH_DIR/run
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }

# --- ready -----------------------------------------------------------------------------------
echo
echo "== start to /readyz ($RUNS runs)"
: >"$BENCH_DIR/ready-first" >"$BENCH_DIR/ready-restart"
for ((i = 0; i < RUNS; i++)); do
    fresh=$BENCH_DIR/fresh-$i
    $LOAD startup "$CORACLE" "$fresh" "$PORT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ready_s"])' >>"$BENCH_DIR/ready-first"
    rm -rf "$fresh"
    $LOAD startup "$CORACLE" "$DATA" "$PORT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ready_s"])' >>"$BENCH_DIR/ready-restart"
done

# --- the server for the rest -----------------------------------------------------------------
"$CORACLE" --data-dir "$DATA" server --listen "127.0.0.1:$PORT" >"$BENCH_DIR/server.log" 2>&1 &
SERVER=$!
# Containers outlive the server: delete the pods (and wait) before stopping it.
BENCH_CLEANUPS+=("kill -TERM $SERVER; wait $SERVER")
BENCH_CLEANUPS+=("$LOAD gone $DATA $PORT >/dev/null")
for ((i = 0; i < 200; i++)); do
    [ -s "$DATA/kubeconfig" ] && break
    sleep 0.1
done
[ -s "$DATA/kubeconfig" ] || die "coracle server wrote no kubeconfig (see $BENCH_DIR/server.log)"
export KUBECONFIG=$DATA/kubeconfig HOME=$BENCH_DIR/home
mkdir -p "$HOME"
# The shims of this data dir's containers, by their command line.
shims() { pgrep -f -- "shim $DATA/" | tr '\n' ' ' || true; }

sleep 3
IDLE=$($LOAD rss $SERVER)
echo "idle: $IDLE"

echo
echo "== $RUNNING running pods"
$LOAD create "$DATA" "$PORT" "$RUNNING" run running
WAIT=$($LOAD wait "$DATA" "$PORT" "$RUNNING")
echo "all running: $WAIT"
sleep 3
# shellcheck disable=SC2046
BUSY=$($LOAD rss $SERVER $(shims))
echo "with $RUNNING pods: $BUSY"

echo
echo "== $STORED pods in the store ($((STORED - RUNNING)) bound to a node with no kubelet)"
$LOAD create "$DATA" "$PORT" "$((STORED - RUNNING))" stored unscheduled
[ "$(kubectl get pods --no-headers | wc -l)" = "$STORED" ] || die "kubectl does not list $STORED pods"
TOKEN=$(cat "$DATA/pki/token")
LIST_URL=https://127.0.0.1:$PORT/api/v1/namespaces/default/pods
# curl of the list; extra arguments go before the URL.
list_curl() { curl -sf --cacert "$DATA/pki/ca.crt" -H "Authorization: Bearer $TOKEN" "$@" "$LIST_URL"; }
LIST_BYTES=$(list_curl | wc -c)
bench_hyperfine list --warmup 2 --runs "$RUNS" \
    -n "kubectl get pods ($STORED pods)" "kubectl get pods" \
    -n "kubectl get pods (empty namespace)" "kubectl get pods -n bench-empty" \
    -n "curl list ($STORED pods, JSON)" \
    "curl -sf -o /dev/null --cacert $DATA/pki/ca.crt -H 'Authorization: Bearer $TOKEN' $LIST_URL"
# The request alone, as curl times it: total minus connect and TLS handshake.
for ((i = 0; i <= RUNS; i++)); do
    list_curl -o /dev/null -w '%{time_appconnect} %{time_total}\n'
done >"$BENCH_DIR/list-requests"

STORED_RSS=$($LOAD rss $SERVER)
echo "with $STORED pods listed: $STORED_RSS"

echo
echo "== $WATCHERS watchers"
WATCH=$($LOAD watch "$DATA" "$PORT" "$WATCHERS" 20 "$SERVER")
echo "watch: $WATCH"

# --- report ----------------------------------------------------------------------------------
echo
python3 - "$BENCH_DIR" "$IDLE" "$BUSY" "$STORED_RSS" "$WATCH" "$RUNNING" "$STORED" "$LIST_BYTES" <<'EOF'
import json, statistics, sys
d = sys.argv[1]
idle, busy, listed, watch = (json.loads(a) for a in sys.argv[2:6])
running, stored, list_bytes = (int(a) for a in sys.argv[6:9])
def floats(name):
    return [float(x) for x in open(f"{d}/{name}").read().split()]
first, restart = statistics.median(floats("ready-first")), statistics.median(floats("ready-restart"))
# Per request: total minus the TLS handshake (appconnect), first request dropped (cold).
pairs = [tuple(map(float, l.split())) for l in open(f"{d}/list-requests") if l.strip()][1:]
request = statistics.median(total - tls for tls, total in pairs)
results = json.load(open(f"{d}/list.json"))["results"]
kubectl, floor, curl = (r["median"] for r in results)
mb = lambda kb: kb / 1024
print("| measure | coracle server |")
print("|---|---|")
print(f"| start to /readyz, first start (new CA and keys) | {first*1000:.1f} ms |")
print(f"| start to /readyz, restart | {restart*1000:.1f} ms |")
print(f"| RSS idle (VmRSS / VmHWM) | {mb(idle['rss_kb']):.1f} MB / {mb(idle['hwm_kb']):.1f} MB |")
print(f"| RSS with {running} pods running | {mb(busy['rss_kb']):.1f} MB / {mb(busy['hwm_kb']):.1f} MB (+ {busy['others']} shims, {mb(busy['others_pss_kb']):.1f} MB Pss in all) |")
print(f"| RSS with {stored} pods, after listing them | {mb(listed['rss_kb']):.1f} MB / {mb(listed['hwm_kb']):.1f} MB |")
print(f"| RSS with {stored} pods and {watch['watchers']} watchers | {mb(watch['server']['rss_kb']):.1f} MB / {mb(watch['server']['hwm_kb']):.1f} MB |")
print(f"| `kubectl get pods`, {stored} pods | {kubectl*1000:.0f} ms (kubectl on an empty namespace: {floor*1000:.0f} ms) |")
print(f"| `curl` of the JSON list, {stored} pods ({list_bytes/1e6:.1f} MB) | {curl*1000:.0f} ms; the request alone {request*1000:.0f} ms |")
print(f"| a change to all {watch['watchers']} watchers (median / max of {watch['changes']}) | {watch['all_median_s']*1000:.1f} ms / {watch['all_max_s']*1000:.1f} ms (to each: {watch['each_median_s']*1000:.1f} ms) |")
print()
goal = lambda ok: "met" if ok else "missed"
print(f"goal ready in under 100 ms: {goal(restart < 0.1 and first < 0.1)} (first {first*1000:.0f} ms, restart {restart*1000:.0f} ms)")
print(f"goal idle under 30 MB: {goal(idle['rss_kb'] < 30 * 1024)} ({mb(idle['rss_kb']):.1f} MB)")
print(f"goal a {stored}-pod list in under 100 ms: {goal(request < 0.1)} (request {request*1000:.0f} ms, curl {curl*1000:.0f} ms, kubectl {kubectl*1000:.0f} ms)")
EOF
