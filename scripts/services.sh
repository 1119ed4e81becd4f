#!/usr/bin/env bash
# Start and stop the real services the distributed mode needs, for development
# and CI, without Docker: Apache Kafka (KRaft), Apache Cassandra, Mosquitto.
#
#   bash scripts/services.sh up [SERVICE...]     install what is missing, start, wait until each answers
#   bash scripts/services.sh down [SERVICE...]   stop (TERM, then KILL after a timeout)
#   bash scripts/services.sh status [SERVICE...] state of each (exit 0 only if all answer)
#   bash scripts/services.sh reset [SERVICE...]  stop and delete the data (topics, keyspaces,
#                                                retained messages); jars and certificates stay
#   bash scripts/services.sh env                 export lines for the Rust tests
#   bash scripts/services.sh run -- CMD ARGS...  up, run CMD, always down; exits with CMD's status
#
# SERVICE is kafka, cassandra or mosquitto (default: all three).
# All state (jars, data, logs, pid files, certificates) lives in <repo>/.dev/.
# See infra/dev/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra/dev"
MQTT_INFRA="$ROOT/infra/mosquitto"
STATE="$ROOT/.dev"

ALL_SERVICES=(mosquitto kafka cassandra)

KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
CASSANDRA_PORT=9042
CASSANDRA_STORAGE_PORT=7000
CASSANDRA_JMX_PORT=7199
MQTT_PORT=8884

# Bounded waits, in seconds: until the service answers / until it stops after TERM.
declare -A READY_TIMEOUT=([mosquitto]=20 [kafka]=90 [cassandra]=180)
declare -A STOP_TIMEOUT=([mosquitto]=10 [kafka]=60 [cassandra]=60)

# ---------------------------------------------------------------- helpers

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

now() { date +%s; }

svc_dir() { printf '%s/%s' "$STATE" "$1"; }
pid_file() { printf '%s/%s.pid' "$(svc_dir "$1")" "$1"; }
log_file() {
  case "$1" in
    kafka) printf '%s/kafka/logs/server.log' "$STATE" ;;
    cassandra) printf '%s/cassandra/logs/system.log' "$STATE" ;;
    mosquitto) printf '%s/mosquitto/logs/mosquitto.log' "$STATE" ;;
  esac
}
stdout_file() { printf '%s/logs/stdout.log' "$(svc_dir "$1")"; }

# Print the last lines of a service's logs (its own log and its stdout/stderr).
show_logs() {
  local svc="$1" f
  for f in "$(log_file "$svc")" "$(stdout_file "$svc")"; do
    if [[ -s "$f" ]]; then
      log "----- $svc: last lines of $f"
      tail -n 40 "$f" >&2 || true
    fi
  done
  log "-----"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The pid of a service we started, if that process is still alive and is ours
# (its command line names our state folder: guards against a reused pid).
running_pid() {
  local svc="$1" pf pid
  pf="$(pid_file "$svc")"
  [[ -f "$pf" ]] || return 1
  pid="$(<"$pf")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$STATE"* ]] || return 1
  printf '%s' "$pid"
}

# Start a command detached from this shell (own session, no stdin, output to
# the service's stdout log) and record its pid.
launch() {
  local svc="$1"; shift
  local out pid
  out="$(stdout_file "$svc")"
  mkdir -p "$(dirname "$out")"
  # setsid execs in place (a background job of a script is not a group
  # leader), so $! is the service's own pid.
  printf '=== %s: starting %s\n' "$(date -Is)" "$svc" >"$out"
  # 9>&-: the service must not inherit (and so keep) the lock of take_lock.
  setsid nohup "$@" >>"$out" 2>&1 </dev/null 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$(pid_file "$svc")"
}

# Fail early if a port we need is taken by a process that is not ours.
ensure_ports_free() {
  local svc="$1"; shift
  local port
  for port in "$@"; do
    if port_open "$port"; then
      log "$svc: port 127.0.0.1:$port is already in use by another process:"
      if command -v ss >/dev/null; then ss -ltnp "sport = :$port" >&2 || true; fi
      return 1
    fi
  done
}

# Escape a value for the replacement side of a sed s#...#...# command.
sed_repl() {
  printf '%s' "$1" | sed -e 's/[\\&#]/\\&/g'
}

java_bin() {
  if [[ -n "${OBS_DEV_JAVA:-}" ]]; then
    printf '%s' "$OBS_DEV_JAVA"
  elif [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
    printf '%s' /usr/lib/jvm/java-17-openjdk-amd64/bin/java
  else
    command -v java || die "no java found (Java 17 is needed; set OBS_DEV_JAVA)"
  fi
}

java_major() {
  "$(java_bin)" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p'
}

# apt-get install, with one apt-get update if the package lists are stale.
apt_install() {
  [[ "$(id -u)" -eq 0 ]] || die "need root to apt-get install $*; install it by hand"
  log "install: apt-get install -y $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "$@" >"$STATE/apt-install.log" 2>&1; then
    apt-get update -q >>"$STATE/apt-install.log" 2>&1 || true
    apt-get install -y -q "$@" >>"$STATE/apt-install.log" 2>&1 \
      || { tail -n 20 "$STATE/apt-install.log" >&2; die "apt-get install $* failed"; }
  fi
}

mosquitto_bin() {
  if [[ -x /usr/sbin/mosquitto ]]; then printf '%s' /usr/sbin/mosquitto; else command -v mosquitto; fi
}

# Copy a pom's runtime jars into .dev/SVC/libs, unless they are there already
# for this very pom (a stamp holds the pom's sha256).
ensure_jars() {
  local svc="$1" pom libs stamp want
  pom="$INFRA/$svc/pom.xml"
  libs="$(svc_dir "$svc")/libs"
  stamp="$libs/.pom.sha256"
  want="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || apt_install maven
  log "$svc: resolving jars with maven (first run only)"
  local t0 tmp
  t0="$(now)"
  tmp="$libs.tmp"
  rm -rf "$tmp"
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" -DincludeScope=runtime >"$STATE/mvn-$svc.log" 2>&1; then
    tail -n 30 "$STATE/mvn-$svc.log" >&2
    die "$svc: maven could not resolve $pom (log: $STATE/mvn-$svc.log)"
  fi
  rm -rf "$libs"
  mv "$tmp" "$libs"
  printf '%s\n' "$want" >"$stamp"
  log "$svc: $(find "$libs" -name '*.jar' | wc -l) jars in $libs ($(($(now) - t0)) s)"
}

# ---------------------------------------------------------------- kafka

kafka_java() {
  local logcfg="$1"; shift
  "$(java_bin)" -Dlog4j2.configurationFile="$logcfg" -Dkafka.logs.dir="$STATE/kafka/logs" \
    -cp "$STATE/kafka/libs/*" "$@"
}

kafka_prepare() {
  local dir="$STATE/kafka"
  mkdir -p "$dir/logs" "$dir/data"
  ensure_jars kafka
  sed "s#@KAFKA_DATA_DIR@#$(sed_repl "$dir/data")#g" "$INFRA/kafka/server.properties" >"$dir/server.properties"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local id
    id="$(kafka_java "$INFRA/kafka/tools-log4j2.properties" -Xmx128m kafka.tools.StorageTool random-uuid)"
    log "kafka: formatting storage, cluster id $id"
    kafka_java "$INFRA/kafka/tools-log4j2.properties" -Xmx256m kafka.tools.StorageTool \
      format -t "$id" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 \
      || { cat "$dir/logs/format.log" >&2; return 1; }
  fi
}

kafka_start() {
  ensure_ports_free kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" || return 1
  launch kafka "$(java_bin)" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$STATE/kafka/logs" \
    -cp "$STATE/kafka/libs/*" kafka.Kafka "$STATE/kafka/server.properties"
}

# Ready = a real metadata request (DescribeCluster) answered with our cluster id.
kafka_check() {
  port_open "$KAFKA_PORT" || return 1
  local want got
  want="$(sed -n 's/^cluster\.id=//p' "$STATE/kafka/data/meta.properties")"
  got="$(timeout 20 "$(java_bin)" -Xmx128m \
    -Dlog4j2.configurationFile="$INFRA/kafka/tools-log4j2.properties" \
    -cp "$STATE/kafka/libs/*" org.apache.kafka.tools.ClusterTool cluster-id \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" 2>/dev/null | sed -n 's/^Cluster ID: //p')" || return 1
  [[ -n "$got" && "$got" == "$want" ]]
}

# ---------------------------------------------------------------- cassandra

cassandra_jvm_opts() {
  grep -E '^-' "$INFRA/cassandra/jvm17-dev.options"
}

cassandra_prepare() {
  local dir="$STATE/cassandra"
  mkdir -p "$dir/logs" "$dir/data" "$dir/triggers" "$dir/check"
  ensure_jars cassandra
  local major
  major="$(java_major)"
  [[ "$major" == 11 || "$major" == 17 ]] \
    || die "cassandra: Cassandra 5.0 runs on Java 11 or 17, $(java_bin) is Java $major (set OBS_DEV_JAVA)"
  # The readiness probe, compiled once.
  if [[ ! -f "$dir/check/CqlCheck.class" || "$INFRA/cassandra/CqlCheck.java" -nt "$dir/check/CqlCheck.class" ]]; then
    "$(dirname "$(java_bin)")/javac" -nowarn -d "$dir/check" -cp "$dir/libs/*" "$INFRA/cassandra/CqlCheck.java"
  fi
}

cassandra_start() {
  ensure_ports_free cassandra "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT" "$CASSANDRA_JMX_PORT" || return 1
  local dir="$STATE/cassandra" jamm
  local -a opts
  mapfile -t opts < <(cassandra_jvm_opts)
  jamm="$(find "$dir/libs" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)"
  [[ -n "$jamm" ]] || die "cassandra: no jamm jar in $dir/libs"
  # Cassandra calls mlockall() at start. As root (CAP_IPC_LOCK) that succeeds
  # and faults in the whole committed heap (RSS ~1.5 GiB for nothing on a dev
  # box); without the capability it fails under RLIMIT_MEMLOCK and Cassandra
  # carries on with a warning, as it does for any non-root user.
  local -a nolock=()
  if [[ "$(id -u)" -eq 0 ]] && command -v setpriv >/dev/null; then
    nolock=(setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock)
  fi
  launch cassandra "${nolock[@]}" "$(java_bin)" "${opts[@]}" \
    "-javaagent:$jamm" \
    "-XX:HeapDumpPath=$dir/logs" \
    "-Dcassandra.config=file://$INFRA/cassandra/cassandra.yaml" \
    "-Dcassandra.storagedir=$dir/data" \
    "-Dcassandra.logdir=$dir/logs" \
    "-Dcassandra.triggers_dir=$dir/triggers" \
    "-Dlogback.configurationFile=$INFRA/cassandra/logback.xml" \
    -cp "$dir/libs/*" org.apache.cassandra.service.CassandraDaemon
}

# Ready = SELECT release_version FROM system.local answered over CQL.
cassandra_check() {
  port_open "$CASSANDRA_PORT" || return 1
  local dir="$STATE/cassandra"
  CASSANDRA_VERSION="$(timeout 30 "$(java_bin)" -Xmx128m \
    -Dlogback.configurationFile="$INFRA/cassandra/logback-check.xml" \
    -cp "$dir/libs/*:$dir/check" CqlCheck 127.0.0.1 "$CASSANDRA_PORT" 2>/dev/null)" || return 1
  [[ -n "$CASSANDRA_VERSION" ]]
}

# ---------------------------------------------------------------- mosquitto

CERTS="$STATE/mosquitto/certs"

# key + certificate signed by the dev CA. $1 name, $2 CN, $3 extensions.
issue_cert() {
  local name="$1" cn="$2" ext="$3"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CERTS/$name.key" 2>/dev/null
  chmod 600 "$CERTS/$name.key"
  openssl req -new -key "$CERTS/$name.key" -subj "/CN=$cn" -out "$CERTS/$name.csr"
  openssl x509 -req -in "$CERTS/$name.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" \
    -CAcreateserial -days 825 -sha256 -extfile <(printf '%s\n' "$ext") \
    -out "$CERTS/$name.pem" 2>/dev/null
  rm -f "$CERTS/$name.csr"
}

# Valid for at least another day and signed by the current CA?
cert_ok() {
  [[ -f "$CERTS/$1.pem" && -f "$CERTS/$1.key" ]] || return 1
  openssl x509 -in "$CERTS/$1.pem" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  openssl verify -CAfile "$CERTS/ca.pem" "$CERTS/$1.pem" >/dev/null 2>&1
}

# Dev PKI, created once: CA (ECDSA P-256, key PKCS#8), server cert for
# 127.0.0.1/localhost, client certs CN=devcheck (readiness probe) and
# CN=cloud-hub (the hub's bridge identity). Keys are PKCS#8 PEM (rcgen reads them).
ensure_certs() {
  mkdir -p "$CERTS"
  chmod 700 "$CERTS"
  if [[ ! -f "$CERTS/ca.pem" || ! -f "$CERTS/ca.key" ]] \
      || ! openssl x509 -in "$CERTS/ca.pem" -noout -checkend 2592000 >/dev/null 2>&1; then
    log "mosquitto: creating dev CA in $CERTS"
    rm -f "$CERTS"/*.pem "$CERTS"/*.key "$CERTS"/*.srl
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CERTS/ca.key" 2>/dev/null
    chmod 600 "$CERTS/ca.key"
    openssl req -new -x509 -key "$CERTS/ca.key" -sha256 -days 3650 \
      -subj "/O=observatory dev/CN=observatory dev CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash" \
      -out "$CERTS/ca.pem"
  fi
  local leaf="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
  cert_ok server || issue_cert server localhost "$leaf
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
  cert_ok devcheck || issue_cert devcheck devcheck "$leaf
extendedKeyUsage=clientAuth"
  cert_ok cloud-hub || issue_cert cloud-hub cloud-hub "$leaf
extendedKeyUsage=clientAuth"
  crl_ok || issue_empty_crl
}

# The broker's crlfile must exist and verify against the CA (a hub in
# external mode writes the real one to {data_dir}/pki/crl.pem).
crl_ok() {
  [[ -f "$CERTS/crl.pem" ]] || return 1
  openssl crl -in "$CERTS/crl.pem" -CAfile "$CERTS/ca.pem" -noout 2>/dev/null || return 1
  # nextUpdate at least 30 days ahead
  local next
  next="$(openssl crl -in "$CERTS/crl.pem" -noout -nextupdate | cut -d= -f2)"
  [[ "$(date -d "$next" +%s)" -gt "$(($(date +%s) + 2592000))" ]]
}

# An empty CRL signed by the dev CA, valid ten years.
issue_empty_crl() {
  local db="$CERTS/crl-db"
  mkdir -p "$db"
  : >"$db/index.txt"
  printf '01\n' >"$db/crlnumber"
  openssl ca -gencrl -keyfile "$CERTS/ca.key" -cert "$CERTS/ca.pem" -out "$CERTS/crl.pem" \
    -config <(printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 3650\n' \
      "$db/index.txt" "$db/crlnumber") 2>/dev/null
}

mosquitto_prepare() {
  local dir="$STATE/mosquitto"
  mkdir -p "$dir/logs" "$dir/data"
  if [[ -z "$(mosquitto_bin)" ]] || ! command -v mosquitto_pub >/dev/null; then
    apt_install mosquitto mosquitto-clients
  fi
  [[ -n "$(mosquitto_bin)" ]] || die "mosquitto: binary not found after install"
  ensure_certs
  # Dev instance of the shipped template. It runs as the invoking user
  # ("user root" when started as root): no privilege drop, so the clone may
  # live anywhere (for example under /root, which user mosquitto cannot enter).
  sed -e "s#@USER@#$(sed_repl "$(id -un)")#g" \
      -e "s#@PORT@#$MQTT_PORT#g" \
      -e "s#@LISTEN_ADDRESS@#127.0.0.1#g" \
      -e "s#@CA_FILE@#$(sed_repl "$CERTS/ca.pem")#g" \
      -e "s#@CERT_FILE@#$(sed_repl "$CERTS/server.pem")#g" \
      -e "s#@KEY_FILE@#$(sed_repl "$CERTS/server.key")#g" \
      -e "s#@ACL_FILE@#$(sed_repl "$MQTT_INFRA/acl")#g" \
      -e "s#@CRL_FILE@#$(sed_repl "$CERTS/crl.pem")#g" \
      -e "s#@PERSISTENCE_DIR@#$(sed_repl "$dir/data/")#g" \
      -e "s#@LOG_FILE@#$(sed_repl "$dir/logs/mosquitto.log")#g" \
      "$MQTT_INFRA/mosquitto.conf" >"$dir/mosquitto.conf"
  if grep -Eq '^[^#]*@[A-Z_]+@' "$dir/mosquitto.conf"; then
    die "mosquitto: unrendered placeholder in $dir/mosquitto.conf"
  fi
}

mosquitto_start() {
  ensure_ports_free mosquitto "$MQTT_PORT" || return 1
  launch mosquitto "$(mosquitto_bin)" -c "$STATE/mosquitto/mosquitto.conf"
}

mqtt_pub() {
  timeout 10 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" --cafile "$CERTS/ca.pem" \
    -q 1 -t /tenants/devcheck/obs/v1/up/check -m "ready $(date +%s)" "$@"
}

# Ready = a QoS 1 publish over mutual TLS with the devcheck certificate gets
# its PUBACK, and the same publish without a client certificate is refused.
# (No bare TCP probe first: the broker would log each one as a failed TLS handshake.)
mosquitto_check() {
  mqtt_pub -i "devcheck-$$" --cert "$CERTS/devcheck.pem" --key "$CERTS/devcheck.key" \
    >/dev/null 2>&1 || return 1
  if mqtt_pub -i "devcheck-nocert-$$" >/dev/null 2>&1; then
    log "mosquitto: a client WITHOUT a certificate was accepted: check $STATE/mosquitto/mosquitto.conf"
    return 2
  fi
}

# ---------------------------------------------------------------- up / down / status

# Wait until SVC answers (or its process dies, or the bounded wait runs out).
wait_ready() {
  local svc="$1" t0="$2" limit rc
  limit="${READY_TIMEOUT[$svc]}"
  while :; do
    rc=0
    "${svc}_check" || rc=$?
    if [[ "$rc" -eq 0 ]]; then
      local extra=""
      [[ "$svc" == cassandra ]] && extra=" (release_version $CASSANDRA_VERSION)"
      log "$svc: ready in $(($(now) - t0)) s$extra"
      return 0
    fi
    if [[ "$rc" -eq 2 ]]; then
      show_logs "$svc"; return 1
    fi
    if ! running_pid "$svc" >/dev/null; then
      log "$svc: process exited before it was ready"
      show_logs "$svc"; return 1
    fi
    if (($(now) - t0 >= limit)); then
      log "$svc: not ready after $limit s"
      show_logs "$svc"; return 1
    fi
    sleep 1
  done
}

start_if_needed() {
  local svc="$1" pid
  if pid="$(running_pid "$svc")"; then
    log "$svc: already running (pid $pid)"
    return 0
  fi
  rm -f "$(pid_file "$svc")"
  "${svc}_start" || return 1
  log "$svc: started (pid $(<"$(pid_file "$svc")"))"
}

cmd_up() {
  local -a svcs=("$@") failed=()
  local svc
  mkdir -p "$STATE"
  for svc in "${svcs[@]}"; do
    mkdir -p "$(svc_dir "$svc")"
    # Called plainly (not in an || list) so that errexit stays on inside.
    "${svc}_prepare"
  done
  # Start all, then wait for each: the JVMs boot in parallel.
  declare -A t0
  for svc in "${svcs[@]}"; do
    t0[$svc]="$(now)"
    start_if_needed "$svc" || failed+=("$svc")
  done
  for svc in "${svcs[@]}"; do
    [[ " ${failed[*]-} " == *" $svc "* ]] && continue
    wait_ready "$svc" "${t0[$svc]}" || failed+=("$svc")
  done
  if ((${#failed[@]})); then
    log "up: FAILED: ${failed[*]} (logs under $STATE)"
    return 1
  fi
  log "up: all ready: ${svcs[*]}"
}

stop_one() {
  local svc="$1" pid t0 limit
  if ! pid="$(running_pid "$svc")"; then
    rm -f "$(pid_file "$svc")"
    log "$svc: not running"
    return 0
  fi
  t0="$(now)"
  limit="${STOP_TIMEOUT[$svc]}"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (($(now) - t0 >= limit)); then
      log "$svc: still running after $limit s, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  rm -f "$(pid_file "$svc")"
  log "$svc: stopped in $(($(now) - t0)) s"
}

cmd_down() {
  local svc i
  # Reverse order of start.
  for ((i = $# ; i >= 1 ; i--)); do
    svc="${!i}"
    stop_one "$svc"
  done
}

cmd_reset() {
  local svc
  cmd_down "$@"
  for svc in "$@"; do
    rm -rf "$(svc_dir "$svc")/data"
    log "$svc: data deleted"
  done
}

cmd_status() {
  local svc pid all_ok=0 port
  for svc in "$@"; do
    case "$svc" in
      kafka) port="$KAFKA_PORT" ;;
      cassandra) port="$CASSANDRA_PORT" ;;
      mosquitto) port="$MQTT_PORT" ;;
    esac
    if pid="$(running_pid "$svc")"; then
      local rss
      rss="$(ps -o rss= -p "$pid" | tr -d ' ')"
      if "${svc}_check"; then
        printf '%-10s running  pid %-7s rss %4d MiB  127.0.0.1:%s  answering\n' "$svc" "$pid" "$((rss / 1024))" "$port"
      else
        printf '%-10s running  pid %-7s rss %4d MiB  127.0.0.1:%s  NOT answering\n' "$svc" "$pid" "$((rss / 1024))" "$port"
        all_ok=1
      fi
    else
      printf '%-10s stopped\n' "$svc"
      all_ok=1
    fi
  done
  return "$all_ok"
}

cmd_env() {
  local f
  for f in ca.pem ca.key cloud-hub.pem cloud-hub.key; do
    [[ -f "$CERTS/$f" ]] || log "warning: $CERTS/$f does not exist yet (run: bash scripts/services.sh up)"
  done
  # %q: safe to eval even when the clone's path has spaces.
  printf 'export %s=%q\n' \
    OBS_TEST_KAFKA "127.0.0.1:$KAFKA_PORT" \
    OBS_TEST_CASSANDRA "127.0.0.1:$CASSANDRA_PORT" \
    OBS_TEST_MQTT "127.0.0.1:$MQTT_PORT" \
    OBS_TEST_MQTT_CA_CERT "$CERTS/ca.pem" \
    OBS_TEST_MQTT_CA_KEY "$CERTS/ca.key" \
    OBS_TEST_MQTT_HUB_CERT "$CERTS/cloud-hub.pem" \
    OBS_TEST_MQTT_HUB_KEY "$CERTS/cloud-hub.key"
}

# up, run a command with the env exported, always down; exit with its status.
cmd_run() {
  [[ "${1:-}" == "--" ]] && shift
  (($#)) || die "usage: services.sh run -- CMD [ARGS...]"
  trap 'cmd_down "${ALL_SERVICES[@]}"' EXIT
  cmd_up "${ALL_SERVICES[@]}"
  eval "$(cmd_env)"
  local rc=0
  "$@" || rc=$?
  return "$rc"
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

# One up/down at a time per checkout (a second caller waits).
take_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  if ! flock -w 300 9; then
    die "another services.sh up/down still holds $STATE/.lock after 300 s"
  fi
}

# Check the service names given; all three when none is given.
check_services() {
  local s
  for s in "$@"; do
    case "$s" in
      kafka | cassandra | mosquitto) ;;
      *) die "unknown service '$s' (kafka, cassandra, mosquitto)" ;;
    esac
  done
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    up | down | status | reset)
      check_services "$@"
      [[ "$cmd" == status ]] || take_lock
      if (($#)); then "cmd_$cmd" "$@"; else "cmd_$cmd" "${ALL_SERVICES[@]}"; fi
      ;;
    env) cmd_env ;;
    run) take_lock; cmd_run "$@" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
