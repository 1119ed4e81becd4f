#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test the project:
#   apt:  protobuf-compiler + libprotobuf-dev (gRPC code generation),
#         mosquitto + mosquitto-clients (the external broker in tests),
#         chromium (the dashboard's browser test; Debian's, never a
#         downloaded browser build)
#   pip:  a project venv in .venv with ml/requirements.txt: onnxruntime==1.31.1
#         (the ONNX Runtime shared library the hub loads through `ort`) and
#         the training stack of ml/train/ (numpy, pandas, scikit-learn, skl2onnx)
#   npm:  tests/browser/ `npm ci` from its package-lock.json (playwright-core
#         only, driving /usr/bin/chromium); needs Node.js >= 20 and npm
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
  local wanted=(protobuf-compiler libprotobuf-dev mosquitto mosquitto-clients chromium)
  # Node.js for the browser test, unless the machine has one already.
  command -v node >/dev/null 2>&1 || wanted+=(nodejs)
  command -v npm >/dev/null 2>&1 || wanted+=(npm)
  for pkg in "${wanted[@]}"; do
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
  # Reinstall when onnxruntime is not 1.31.1 or ml/requirements.txt changed
  # since the last install (its sha256 is kept in the venv).
  local want have=""
  want=$(sha256sum "$root/ml/requirements.txt" | cut -d' ' -f1)
  [ -f "$venv/.requirements.sha256" ] && have=$(cat "$venv/.requirements.sha256")
  if [ "$want" != "$have" ] \
    || ! "$venv/bin/python" -c 'import onnxruntime, sys; sys.exit(onnxruntime.__version__ != "1.31.1")' 2>/dev/null; then
    log "installing python requirements into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/ml/requirements.txt"
    printf '%s\n' "$want" >"$venv/.requirements.sha256"
  fi
}

install_browser_test() {
  local dir="$root/tests/browser"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    log "node $(node --version) is too old for playwright-core (needs >= 20)"
    return 1
  fi
  # Reinstall when package-lock.json changed since the last `npm ci`.
  local want have=""
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  [ -f "$dir/node_modules/.lock.sha256" ] && have=$(cat "$dir/node_modules/.lock.sha256")
  if [ "$want" != "$have" ] || [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
    log "npm ci in tests/browser (playwright-core; the browser is Debian's chromium)"
    # playwright-core never downloads a browser; say so anyway.
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" >"$dir/node_modules/.lock.sha256"
  fi
}

install_apt
install_venv
install_browser_test
log "ready"
