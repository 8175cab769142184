#!/usr/bin/env bash
# Benchmark: a pod with 0, 3 and 10 init containers, coracle against `podman kube play`.
#
# Every container (init and app) runs `true` from the busybox image, restartPolicy Never
# (podman 4.3 restarts even successful init containers under Always). Pod networking is on for
# both (coracle: its CNI bridge; podman: netavark, on another subnet so the two never clash).
#
# What is timed, from the command's start to its exit (hyperfine, medians):
#   coracle      `coracle run pod.yaml`: admits the pod, creates the sandbox, runs the init
#                containers one by one, then the app container; exits once the app exited and
#                the pod was cleaned up (sandbox, network, containers).
#   podman full  `podman kube play pod.yaml && podman wait <app> && podman kube down pod.yaml`:
#                the same work as coracle's, start to app exit to cleanup.
#   podman play  `podman kube play pod.yaml` alone: returns once the app container started
#                (init containers done), before it is waited for or cleaned up. Less work than
#                coracle's figure, so ratios against it are conservative.
# Also: a bare `crun run` and `runc run` of `true` on the same rootfs, to compare with the
# cost of one init container ((t10 - t0) / 10).
#
# Goals (issue 3): coracle >= 10x faster than podman on the 3- and 10-init pods; each init
# container adds less than 2x a bare `crun run`.
#
# Podman here needs: netavark (Debian's podman does not pull it in), catatonit (its pause
# image is built locally from it), runc as its runtime (crun refuses the hybrid cgroup
# layout), the cgroupfs manager, the file events logger and default_ulimits no higher than
# nofile=20000, nproc=32768. The script writes a
# containers.conf and storage.conf in its scratch dir (CONTAINERS_CONF,
# CONTAINERS_STORAGE_CONF), so podman's own configuration and storage are not touched.
#
# usage: bench/pod-start.sh              (as root; BENCH_RUNS, CORACLE_BIN: see lib.sh)
source "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-10}
INITS=(0 3 10)
need_packages podman catatonit netavark runc crun hyperfine python3
coracle_binary
busybox_archive
coracle_data_dir
oci_bundle
export CORACLE_RUN_DIR=$BENCH_DIR/run

# --- podman, configured for this machine, with its storage in the scratch dir --------------
PM=$BENCH_DIR/podman
mkdir -p "$PM"
cat >"$PM/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PM/events.log"

[network]
network_backend = "netavark"
default_subnet = "10.89.0.0/24"
network_config_dir = "$PM/networks"
EOF
cat >"$PM/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$PM/storage"
runroot = "$PM/runroot"
EOF
export CONTAINERS_CONF=$PM/containers.conf CONTAINERS_STORAGE_CONF=$PM/storage.conf
BENCH_CLEANUPS+=("podman system reset --force >/dev/null 2>&1")
podman load -q -i "$BUSYBOX_ARCHIVE" >/dev/null

# --- the pods -------------------------------------------------------------------------------
for n in "${INITS[@]}"; do
    {
        echo "apiVersion: v1"
        echo "kind: Pod"
        echo "metadata: {name: bench-init$n}"
        echo "spec:"
        echo "  restartPolicy: Never"
        if [ "$n" -gt 0 ]; then
            echo "  initContainers:"
            for ((i = 0; i < n; i++)); do
                echo "  - {name: init$i, image: docker.io/library/busybox:latest, imagePullPolicy: IfNotPresent, command: [\"true\"]}"
            done
        fi
        echo "  containers:"
        echo "  - {name: app, image: docker.io/library/busybox:latest, imagePullPolicy: IfNotPresent, command: [\"true\"]}"
    } >"$BENCH_DIR/pod-$n.yaml"
done

# Podman builds its pause image on first use: do that before timing anything.
podman kube play "$BENCH_DIR/pod-0.yaml" >/dev/null 2>&1
podman kube down "$BENCH_DIR/pod-0.yaml" >/dev/null 2>&1

# --- measure --------------------------------------------------------------------------------
for n in "${INITS[@]}"; do
    pod=$BENCH_DIR/pod-$n.yaml
    echo
    echo "== pod with $n init containers ($RUNS runs each)"
    bench_hyperfine "coracle-$n" --warmup 2 --runs "$RUNS" \
        -n "coracle run ($n init)" "$CORACLE --data-dir $DATA run $pod"
    bench_hyperfine "podman-full-$n" --warmup 1 --runs "$RUNS" \
        -n "podman kube play+wait+down ($n init)" \
        "podman kube play $pod >/dev/null 2>&1 && podman wait bench-init$n-app >/dev/null && podman kube down $pod >/dev/null 2>&1"
    bench_hyperfine "podman-play-$n" --warmup 1 --runs "$RUNS" \
        --prepare "podman kube down $pod >/dev/null 2>&1 || true" \
        -n "podman kube play ($n init)" "podman kube play $pod"
    podman kube down "$pod" >/dev/null 2>&1 || true
done

echo
echo "== bare runtimes: \`true\` on the same busybox rootfs"
runc delete -f bench-runc >/dev/null 2>&1 || true
bench_hyperfine runc --warmup 3 --runs 30 -n "runc run" "runc run --bundle $BUNDLE bench-runc"
unshare -m bash -c "
    umount /sys/fs/cgroup/unified
    $(declare -f bench_hyperfine)
    BENCH_DIR=$BENCH_DIR
    crun delete -f bench-crun >/dev/null 2>&1 || true
    bench_hyperfine crun --warmup 3 --runs 30 -n 'crun run' 'crun run --bundle $BUNDLE bench-crun'
"

# --- report ---------------------------------------------------------------------------------
echo
python3 - "$BENCH_DIR" "${INITS[@]}" <<'EOF'
import json, sys
d, inits = sys.argv[1], [int(n) for n in sys.argv[2:]]
def med(name):
    return json.load(open(f"{d}/{name}.json"))["results"][0]["median"]
rows = [(n, med(f"coracle-{n}"), med(f"podman-full-{n}"), med(f"podman-play-{n}")) for n in inits]
print("| init containers | coracle run | podman play+wait+down | podman kube play | podman full / coracle | podman play / coracle |")
print("|-----------------|-------------|-----------------------|------------------|-----------------------|-----------------------|")
for n, c, pf, pp in rows:
    print(f"| {n:>15} | {c*1000:8.0f} ms | {pf*1000:18.0f} ms | {pp*1000:13.0f} ms | {pf/c:20.1f}x | {pp/c:20.1f}x |")
crun, runc = med("crun"), med("runc")
lo, hi = rows[0], rows[-1]
span = hi[0] - lo[0]
per = [(name, (hi[i] - lo[i]) / span) for i, name in [(1, "coracle"), (2, "podman full"), (3, "podman play")]]
print()
print(f"bare runtimes, `true` to exit: crun run {crun*1000:.1f} ms, runc run {runc*1000:.1f} ms")
print("cost of one init container ((t%d - t%d) / %d):" % (hi[0], lo[0], span))
for name, t in per:
    print(f"  {name:<12} {t*1000:7.1f} ms  = {t/crun:5.1f}x crun run, {t/runc:5.1f}x runc run")
print()
for n, c, pf, pp in rows:
    if n >= 3:
        ok = "met" if pp / c >= 10 else "missed"
        print(f"goal coracle >= 10x faster than podman kube play, {n} init: {ok} ({pp/c:.1f}x)")
ok = "met" if per[0][1] < 2 * crun else "missed"
print(f"goal one init container < 2x a bare crun run: {ok} ({per[0][1]/crun:.1f}x)")
EOF
