#!/usr/bin/env bash
# Benchmark: start a busybox container that runs `true`, to its exit.
#
#   coracle ctr run --rm docker.io/library/busybox:latest -- true
#   runc run   (bundle: `runc spec` + the same busybox rootfs, args ["true"])
#   crun run   (same bundle; in a private mount namespace with /sys/fs/cgroup/unified
#               unmounted, since Debian's crun refuses this machine's hybrid cgroup layout)
#
# Each command is timed from its start to its exit (hyperfine), the container created,
# started, waited for and removed. Prints the medians and the ratios to crun and runc.
# Goal (issue 2): coracle within 1.5x of crun.
#
# usage: bench/container-start.sh        (as root; BENCH_RUNS, CORACLE_BIN: see lib.sh)
source "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-50}
need_packages runc crun hyperfine python3
coracle_binary
busybox_archive
coracle_data_dir
oci_bundle
export CORACLE_RUN_DIR=$BENCH_DIR/run

# Leftovers of an interrupted earlier run.
runc delete -f bench-runc >/dev/null 2>&1 || true
crun delete -f bench-crun >/dev/null 2>&1 || true

echo
echo "== container start to exit of \`true\` ($RUNS runs each)"
bench_hyperfine coracle --warmup 3 --runs "$RUNS" \
    -n "coracle ctr run --rm" "$CORACLE --data-dir $DATA ctr run --rm docker.io/library/busybox:latest -- true"
bench_hyperfine runc --warmup 3 --runs "$RUNS" \
    -n "runc run" "runc run --bundle $BUNDLE bench-runc"
# hyperfine itself runs in the private mount namespace, so the unshare is not timed.
unshare -m bash -c "
    umount /sys/fs/cgroup/unified
    $(declare -f bench_hyperfine)
    BENCH_DIR=$BENCH_DIR
    bench_hyperfine crun --warmup 3 --runs $RUNS -n 'crun run' 'crun run --bundle $BUNDLE bench-crun'
"

coracle_s=$(median coracle 0)
runc_s=$(median runc 0)
crun_s=$(median crun 0)
echo
python3 - "$coracle_s" "$runc_s" "$crun_s" <<'EOF'
import sys
coracle, runc, crun = map(float, sys.argv[1:])
print("| command                | median   | coracle / it |")
print("|------------------------|----------|--------------|")
for name, t in [("coracle ctr run --rm", coracle), ("runc run", runc), ("crun run", crun)]:
    print(f"| {name:<22} | {t * 1000:6.1f} ms | {coracle / t:11.2f}x |")
verdict = "met" if coracle <= 1.5 * crun else "missed"
print(f"\ngoal coracle <= 1.5x crun: {verdict} ({coracle / crun:.2f}x)")
EOF
