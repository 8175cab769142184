# Shared by coracle's benchmarks (sourced, not run). Sets up a scratch dir, the coracle
# release binary, a data dir with the busybox image, and reports hyperfine results as tables.
#
# Environment:
#   CORACLE_BIN        coracle binary to measure (default: cargo build --release, then
#                      $CARGO_TARGET_DIR/release/coracle)
#   BENCH_RUNS         timed runs per command (default depends on the benchmark)
#   BENCH_KEEP         set to keep the scratch dir (its path is printed)

set -euo pipefail

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "bench: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "run the benchmarks as root"

BENCH_DIR=$(mktemp -d /tmp/coracle-bench.XXXXXX)
BENCH_CLEANUPS=()

# Runs the registered cleanups (last first) and removes the scratch dir.
bench_cleanup() {
    local i
    for ((i = ${#BENCH_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${BENCH_CLEANUPS[$i]}" || true
    done
    if [ -n "${BENCH_KEEP:-}" ]; then
        echo "bench: kept $BENCH_DIR" >&2
    else
        rm -rf "$BENCH_DIR"
    fi
}
trap bench_cleanup EXIT

# Installs Debian packages that are missing (benchmarks only: not in .ci/packages.txt).
need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "bench: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Sets CORACLE to the release binary, building it unless CORACLE_BIN names one.
coracle_binary() {
    if [ -n "${CORACLE_BIN:-}" ]; then
        CORACLE=$CORACLE_BIN
    else
        (cd "$BENCH_REPO" && cargo build --release --bin coracle) || die "cargo build --release failed"
        CORACLE=${CARGO_TARGET_DIR:-$BENCH_REPO/target}/release/coracle
    fi
    [ -x "$CORACLE" ] || die "no coracle binary at $CORACLE"
    echo "coracle: $CORACLE"
}

# Writes the busybox test image (docker.io/library/busybox:latest, as make-test-images.py
# makes it) to $BENCH_DIR/images/busybox.docker.tar.
busybox_archive() {
    mkdir -p "$BENCH_DIR/images"
    python3 - "$BENCH_REPO/scripts/make-test-images.py" "$BENCH_DIR/images" <<'EOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("mti", sys.argv[1])
mti = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mti)
mti.write_archives(sys.argv[2], "busybox", "docker.io/library/busybox:latest", [mti.busybox_base()], cmd=["sh"])
EOF
    BUSYBOX_ARCHIVE=$BENCH_DIR/images/busybox.docker.tar
}

# A fresh coracle data dir in the scratch dir, with busybox imported: sets DATA.
coracle_data_dir() {
    DATA=$BENCH_DIR/coracle
    "$CORACLE" --data-dir "$DATA" image import "$BUSYBOX_ARCHIVE" >/dev/null
}

# An OCI bundle (runc spec + the busybox rootfs) running `true`: sets BUNDLE.
oci_bundle() {
    BUNDLE=$BENCH_DIR/bundle
    mkdir -p "$BUNDLE/rootfs"
    python3 - "$BUSYBOX_ARCHIVE" "$BUNDLE/rootfs" <<'EOF'
import io, json, sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    manifest = json.load(archive.extractfile("manifest.json"))[0]
    for layer in manifest["Layers"]:
        with tarfile.open(fileobj=io.BytesIO(archive.extractfile(layer).read())) as t:
            t.extractall(sys.argv[2])
EOF
    (cd "$BUNDLE" && runc spec)
    python3 - "$BUNDLE/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["args"] = ["true"]
spec["process"]["terminal"] = False
json.dump(spec, open(path, "w"), indent=2)
EOF
}

# hyperfine with the settings every benchmark uses; NAME.json gets the results.
bench_hyperfine() {
    local name=$1
    shift
    hyperfine --style basic --export-json "$BENCH_DIR/$name.json" "$@"
}

# Median seconds of command INDEX (0-based) in NAME.json.
median() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"])' \
        "$BENCH_DIR/$1.json" "$2"
}
