#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test the project:
#   apt:  protobuf-compiler + libprotobuf-dev (gRPC code generation),
#         mosquitto + mosquitto-clients (the external broker in tests)
#   pip:  a project venv in .venv with onnxruntime==1.31.1 (the ONNX Runtime
#         shared library the hub loads through `ort`)
# Maven artifacts for Kafka and Cassandra are fetched by scripts/services.sh.
# Idempotent: does nothing that is already done.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"

log() { printf 'setup: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

install_apt() {
  local missing=()
  local pkg
  for pkg in protobuf-compiler libprotobuf-dev mosquitto mosquitto-clients; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y -q "${missing[@]}" >/dev/null; then
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q "${missing[@]}" >/dev/null
  fi
}

install_venv() {
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c 'import onnxruntime, sys; sys.exit(onnxruntime.__version__ != "1.31.1")' 2>/dev/null; then
    log "installing python requirements into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/ml/requirements.txt"
  fi
}

install_apt
install_venv
log "ready"
