#!/usr/bin/env bash
# Installs what the test suite needs and a fresh Debian machine lacks: the Debian packages in
# .ci/packages.txt, kubectl, and the official Python kubernetes client for tests/python.
# Does nothing (and needs no network) when everything is there. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

wanted=$(grep -v '^\s*#' .ci/packages.txt | tr '\n' ' ')
missing=""
for p in $wanted; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# kubectl: the machine's own (Google Cloud SDK's package owns /usr/bin/kubectl) or Debian's.
if ! command -v kubectl >/dev/null; then
  echo "installing kubectl (Debian's kubernetes-client)"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi

# The official Python client, pinned to the release for Kubernetes 1.33.
# Debian's own python3 refuses a system-wide pip install unless told (PEP 668).
python_client=33.1.0
if ! python3 -c "import kubernetes, sys; sys.exit(kubernetes.__version__ != '$python_client')" 2>/dev/null; then
  echo "installing the Python kubernetes client $python_client"
  pip_args=(-q --disable-pip-version-check --root-user-action=ignore)
  if python3 -m pip install --help | grep -- --break-system-packages >/dev/null; then
    pip_args+=(--break-system-packages)
  fi
  python3 -m pip install "${pip_args[@]}" "kubernetes==$python_client"
fi
