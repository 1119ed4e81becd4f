#!/usr/bin/env bash
# compose `enroll` (runs once after the hub is ready, as the hub image's user):
#   1. mints the bootstrap admin API token (`cloud-hub admin token`, written
#      straight to the shared store; kept in $JOIN/admin.token, mode 0600),
#   2. creates a single-use join token per site and leaves its one-line
#      `fog-node enroll ...` command in $JOIN/<site>.cmd for that fog-node,
#   3. uploads the sample optics records and installs 18 segments per site,
#      so fleet health has something to predict.
# Idempotent: a site whose fog-node already enrolled ($JOIN/<site>.enrolled)
# is skipped; the token is reused while the hub still accepts it.
set -euo pipefail

JOIN=${OBS_COMPOSE_JOIN_DIR:-/join}
HUB_CONFIG=${OBS_COMPOSE_HUB_CONFIG:-/etc/observatory/hub.toml}
HUB_HTTP=${OBS_COMPOSE_HUB_HTTP:-hub:8080}
SAMPLES=${OBS_COMPOSE_SAMPLES:-/opt/observatory/samples/segments.csv}
# One line per site: id|display name|latitude|longitude|altitude m
SITES=${OBS_COMPOSE_SITES:-"nrt|Nordic Optical Telescope|28.7573|-17.8850|2382
lasilla|ESO 3.6 m, La Silla|-29.2612|-70.7313|2400"}
export OBS_HUB=${OBS_HUB:-hub:50051}

log() { printf 'enroll: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# GET http://$HUB_HTTP$1 with bash alone (the image has no curl); 0 on HTTP 200.
http_ok() {
  local host=${HUB_HTTP%:*} port=${HUB_HTTP##*:} status
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$host" >&3
  IFS= read -r -t 5 status <&3 || status=""
  exec 3<&- 3>&-
  [[ $status == *" 200"* ]]
}

log "waiting for the hub to be ready (http://$HUB_HTTP/readyz)"
for ((i = 0; ; i++)); do
  http_ok /readyz 2>/dev/null && break
  ((i < 90)) || die "the hub is not ready after 180 s: docker compose logs hub"
  sleep 2
done

umask 077
OBS_CA_HASH=$(cloud-hub print-ca-hash --config "$HUB_CONFIG")
export OBS_CA_HASH
log "hub CA $OBS_CA_HASH"

# The admin token: reuse the saved one while the hub accepts it.
if [[ -s "$JOIN/admin.token" ]]; then
  OBS_TOKEN=$(<"$JOIN/admin.token")
  export OBS_TOKEN
  obsctl sites list >/dev/null 2>&1 || { log "the saved admin token is refused; minting a new one"; rm -f "$JOIN/admin.token"; }
fi
if [[ ! -s "$JOIN/admin.token" ]]; then
  # `admin token` opens the store itself; its data dir is scratch space here.
  OBS_HUB__DATA_DIR=${OBS_COMPOSE_ADMIN_DATA_DIR:-/tmp/enroll-data} \
    cloud-hub admin token --role admin --name compose-bootstrap --config "$HUB_CONFIG" >"$JOIN/admin.token.tmp"
  mv "$JOIN/admin.token.tmp" "$JOIN/admin.token"
  log "minted an admin token (kept in the join volume as admin.token)"
fi
OBS_TOKEN=$(<"$JOIN/admin.token")
export OBS_TOKEN

log "uploading the sample optics records ($SAMPLES)"
obsctl segments upload "$SAMPLES" >&2

# Serials that passed acceptance, by mirror ring (6 inner + 12 outer per site).
serials_of_ring() {
  awk -F, -v ring="$1" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["ring"] == ring && $col["acceptance_passed"] == "true" { print $col["serial"] }
  ' "$SAMPLES"
}
mapfile -t inner < <(serials_of_ring 1)
mapfile -t outer < <(serials_of_ring 2)

index=0
while IFS='|' read -r site name lat lon alt; do
  [[ -n $site ]] || continue
  if [[ -e "$JOIN/$site.enrolled" ]]; then
    log "site $site: its fog-node is enrolled; nothing to do"
    index=$((index + 1))
    continue
  fi
  args=(sites join-token --site "$site" --name "$name" --lat "$lat" --lon "$lon" --alt "$alt" --ttl 2d)
  if ! obsctl "${args[@]}" >"$JOIN/$site.cmd.tmp" 2>"$JOIN/$site.err"; then
    # Enrolled before (e.g. its state volume was removed): issue a re-enrolment token.
    grep -qi "already" "$JOIN/$site.err" || { cat "$JOIN/$site.err" >&2; die "join token for $site"; }
    obsctl "${args[@]}" --reenroll >"$JOIN/$site.cmd.tmp"
  fi
  rm -f "$JOIN/$site.err"
  mv "$JOIN/$site.cmd.tmp" "$JOIN/$site.cmd"
  log "site $site: join command ready for its fog-node"

  ((${#inner[@]} >= (index + 1) * 6 && ${#outer[@]} >= (index + 1) * 12)) \
    || die "the sample records have too few accepted segments for site $site"
  for position in $(seq 1 18); do
    if ((position <= 6)); then
      serial=${inner[index * 6 + position - 1]}
    else
      serial=${outer[index * 12 + position - 7]}
    fi
    obsctl segments install --site "$site" --position "$position" --serial "$serial" >/dev/null
  done
  log "site $site: 18 segments installed"
  index=$((index + 1))
done <<<"$SITES"

log "done. obsctl from the host: OBS_HUB=localhost:50051 OBS_CA_HASH=$OBS_CA_HASH OBS_TOKEN=\$(docker compose -f infra/compose/compose.yaml run --rm --no-deps --entrypoint cat enroll /join/admin.token)"
