#!/usr/bin/env bash
# compose fog-node entrypoint (the hub image's user): enrols once with the join
# command that the `enroll` service left in $JOIN/<site>.cmd (the node makes
# its own key; only a CSR leaves it), then runs the node with its simulated
# telescope. The identity and the spool live in the node's own volume.
set -euo pipefail

SITE=${OBS_COMPOSE_SITE:?set OBS_COMPOSE_SITE to the site id of this node}
JOIN=${OBS_COMPOSE_JOIN_DIR:-/join}
STATE=${OBS_NODE__STATE_DIR:-/var/lib/fog-node}

log() { printf 'fog-node[%s]: %s\n' "$SITE" "$*" >&2; }

if [[ ! -s "$STATE/identity/enrollment.json" ]]; then
  cmd="$JOIN/$SITE.cmd"
  for ((i = 0; ; i++)); do
    [[ -s $cmd ]] && break
    ((i < 60)) || { log "ERROR: no join command in $cmd after 120 s (is the enroll service done?)"; exit 1; }
    sleep 2
  done
  # The line is `fog-node enroll --hub HOST:PORT --token ID.SECRET --ca-hash sha256:...`.
  read -r -a words <"$cmd"
  [[ ${#words[@]} -ge 2 && ${words[0]} == fog-node && ${words[1]} == enroll ]] \
    || { log "ERROR: unexpected join command in $cmd"; exit 1; }
  log "enrolling"
  fog-node "${words[@]:1}" --state-dir "$STATE"
  rm -f "$cmd"
  : >"$JOIN/$SITE.enrolled"
fi

log "running"
exec fog-node run "$@"
