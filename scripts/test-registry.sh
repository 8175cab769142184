#!/bin/sh
# Starts a throwaway registry (Debian's docker-registry) on 127.0.0.1 and pushes coracle's
# test images into it, for trying `coracle image pull` by hand. The Rust tests do not need
# this script: they start their own registry (crates/coracle/tests/image.rs).
#
# usage: scripts/test-registry.sh [PORT]          (default 5000)
# Prints the registry's pid and its directory; stop it with `kill PID`.
set -eu

port=${1:-5000}
repo=$(cd "$(dirname "$0")/.." && pwd)
images=${CORACLE_TEST_IMAGES:-$repo/target/test-images}
[ -d "$images" ] || python3 "$repo/scripts/make-test-images.py" "$images" >/dev/null

dir=$(mktemp -d /tmp/coracle-registry.XXXXXX)
cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $dir/storage}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
EOF
/usr/bin/docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
pid=$!

# Wait until it answers.
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 50 ] || { echo "registry did not start; see $dir/registry.log" >&2; kill $pid; exit 1; }
	sleep 0.1
done

push() { skopeo copy --quiet --dest-tls-verify=false "$@"; }
push docker-archive:"$images/busybox.docker.tar" docker://127.0.0.1:$port/library/busybox:latest
push docker-archive:"$images/busybox.docker.tar" docker://127.0.0.1:$port/busybox:latest
push docker-archive:"$images/layered.docker.tar" docker://127.0.0.1:$port/coracle/layered:v1
push docker-archive:"$images/entrypoint.docker.tar" docker://127.0.0.1:$port/coracle/entrypoint:v1
push --all oci-archive:"$images/multiarch.oci.tar" docker://127.0.0.1:$port/coracle/multiarch:v1
push --all oci-archive:"$images/armonly.oci.tar" docker://127.0.0.1:$port/coracle/armonly:v1

echo "registry on 127.0.0.1:$port, pid $pid, directory $dir"
