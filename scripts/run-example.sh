#!/usr/bin/env bash
# Runs coracle's main example on this machine, from a fresh clone, as root:
# examples/tutorial/init-demo.yaml, the Kubernetes tutorial's pod whose init container
# downloads a page into an emptyDir that nginx then serves.
#
#   1. installs the Debian packages it needs (apt-get) if any is missing;
#   2. builds coracle (cargo build --release);
#   3. builds busybox and nginx images from Debian packages (scripts/example-images.py) and
#      imports them, so no registry is needed;
#   4. starts a page server on the node (the machine has no internet), reachable from pods
#      through the pod network's gateway, and points the init container's URL at it;
#   5. runs `coracle run --logs` on the pod in the background, waits until nginx answers on
#      the pod's IP and prints the page it serves;
#   6. stops coracle with SIGINT (the pod is stopped gracefully and cleaned up) and the server.
#
# Settings (environment):
#   CORACLE_DATA_DIR   coracle's data dir (default /var/lib/coracle)
#   EXAMPLE_URL        download this URL instead of starting a local page server
#   EXAMPLE_PORT       the local page server's port (default 8088)
#   EXAMPLE_GATEWAY    the node's address on the pod network (default 10.88.0.1, the gateway
#                      of coracle's default pod CIDR 10.88.0.0/16)
#   CORACLE_BIN        use this coracle binary instead of building one
#   CARGO_TARGET_DIR   cargo's target dir (default ./target)
#
# Exits non-zero, saying which step failed, if anything goes wrong. Running it twice works.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
DATA=${CORACLE_DATA_DIR:-/var/lib/coracle}
PORT=${EXAMPLE_PORT:-8088}
GATEWAY=${EXAMPLE_GATEWAY:-10.88.0.1}
URL=${EXAMPLE_URL:-}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
MANIFEST=examples/tutorial/init-demo.yaml
POD=init-demo
SHIPPED_URL=http://info.cern.ch
STARTED=$(date +%s)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() {
    printf '\nrun-example: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "run me as root: coracle creates namespaces, mounts, cgroups and a bridge"

WORK=$(mktemp -d /tmp/coracle-example.XXXXXX)
CORACLE_PID=
SERVER_PID=

# Stops what this script started, whatever the reason it exits.
cleanup() {
    local code=$?
    trap - EXIT INT TERM
    if [ -n "$CORACLE_PID" ] && kill -0 "$CORACLE_PID" 2>/dev/null; then
        echo "run-example: stopping coracle (pid $CORACLE_PID)" >&2
        kill -INT "$CORACLE_PID" 2>/dev/null || true
        for _ in $(seq 600); do kill -0 "$CORACLE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CORACLE_PID" 2>/dev/null || true
    fi
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. Debian packages -------------------------------------------------------------------
step "checking Debian packages"
PACKAGES=(busybox-static nginx-light containernetworking-plugins iptables iproute2 libseccomp-dev
    pkg-config gcc libc6-dev python3 curl)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" ||
        die "apt-get install ${missing[*]} failed"
else
    echo "all there: ${PACKAGES[*]}"
fi

# --- 2. coracle ---------------------------------------------------------------------------
if [ -n "${CORACLE_BIN:-}" ]; then
    CORACLE=$CORACLE_BIN
    step "using $CORACLE"
else
    CORACLE=$TARGET/release/coracle
    command -v cargo >/dev/null || die "cargo is missing: install Rust (rustup) first"
    step "building coracle: cargo build --release (several minutes the first time on 2 cores)"
    cargo build --release --bin coracle || die "cargo build --release failed"
fi
[ -x "$CORACLE" ] || die "no coracle binary at $CORACLE"

# --- 3. images ----------------------------------------------------------------------------
step "building busybox and nginx images from Debian packages"
python3 scripts/example-images.py "$TARGET/example-images" || die "building the images failed"
step "importing them into $DATA"
for image in busybox nginx; do
    "$CORACLE" --data-dir "$DATA" image import "$TARGET/example-images/$image.docker.tar" ||
        die "coracle image import $image failed"
done

# --- 4. the page the init container downloads -----------------------------------------------
if [ -z "$URL" ]; then
    step "starting a page server on port $PORT for pods (http://$GATEWAY:$PORT/)"
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        die "port $PORT is in use: free it or set EXAMPLE_PORT to a free port"
    fi
    python3 -m http.server --bind 0.0.0.0 --directory "$REPO/examples/tutorial/site" "$PORT" \
        >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "the page server failed: $(cat "$WORK/server.log")"
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" || die "the page server does not answer on port $PORT"
    URL="http://$GATEWAY:$PORT/"
fi
sed "s#$SHIPPED_URL#$URL#" "$MANIFEST" >"$WORK/init-demo.yaml"
grep -q "$URL" "$WORK/init-demo.yaml" || die "could not set the URL in $MANIFEST"
echo "the init container downloads $URL"

# --- 5. the pod ---------------------------------------------------------------------------
step "coracle run --logs $MANIFEST (in the background)"
"$CORACLE" --data-dir "$DATA" run --logs "$WORK/init-demo.yaml" > >(tee "$WORK/coracle.log" | sed -u 's/^/    | /') 2>&1 &
CORACLE_PID=$!

# The pod's IP, from the pod engine's state (DATA/pods/<uid>/state.json).
pod_ip() {
    python3 - "$DATA" "$POD" <<'EOF'
import glob, json, sys
data, name = sys.argv[1], sys.argv[2]
for path in glob.glob(f"{data}/pods/*/state.json"):
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        continue
    if state["pod"]["metadata"].get("name") == name and not state.get("terminal"):
        ips = (state.get("sandbox") or {}).get("ips") or []
        if ips:
            print(ips[0])
            break
EOF
}

alive() { kill -0 "$CORACLE_PID" 2>/dev/null; }
IP=
for _ in $(seq 600); do
    alive || die "coracle run exited before the pod got an IP (output above)"
    IP=$(pod_ip)
    [ -n "$IP" ] && break
    sleep 0.2
done
[ -n "$IP" ] || die "the pod got no IP within 2 minutes (output above)"
echo "pod $POD has IP $IP; waiting for nginx to answer"

PAGE=$WORK/page.html
for _ in $(seq 600); do
    alive || die "coracle run exited before nginx answered (output above)"
    curl -fsS -m 2 -o "$PAGE" "http://$IP/" 2>/dev/null && break
    sleep 0.2
done
[ -s "$PAGE" ] || die "nginx did not serve a page on http://$IP/ within 2 minutes (output above)"

step "the page served by nginx at http://$IP/:"
cat "$PAGE"
if [ -n "$SERVER_PID" ] && ! cmp -s "$PAGE" examples/tutorial/site/index.html; then
    die "nginx served something other than the page the init container downloaded"
fi

# --- 6. stop ------------------------------------------------------------------------------
step "stopping coracle with SIGINT (graceful stop and cleanup)"
kill -INT "$CORACLE_PID"
code=0
wait "$CORACLE_PID" || code=$?
CORACLE_PID=
# 130 is coracle's exit code after Ctrl-C.
[ "$code" = 130 ] || [ "$code" = 0 ] || die "coracle run exited with $code after SIGINT (output above)"
sleep 0.2 # let tee print coracle's last lines
[ -z "$(pod_ip)" ] || die "the pod's state was not cleaned up after SIGINT"

step "done in $(($(date +%s) - STARTED)) s: the init container downloaded the page, nginx served it, and coracle cleaned up"
