{{/* Names ------------------------------------------------------------- */}}

{{- define "obs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "obs.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "obs.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "obs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "obs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "obs.labels" -}}
helm.sh/chart: {{ include "obs.chart" . }}
{{ include "obs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: observatory-hub
app.kubernetes.io/component: cloud-hub
{{- end -}}

{{- define "obs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "obs.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "obs.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The CA Secret's name, or "" when the hub creates its own CA. */}}
{{- define "obs.caSecretName" -}}
{{- if .Values.ca.existingSecret -}}
{{- .Values.ca.existingSecret -}}
{{- else if .Values.ca.create -}}
{{- printf "%s-ca" (include "obs.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the container. */}}
{{- define "obs.configDir" -}}/etc/observatory{{- end -}}
{{- define "obs.caSecretDir" -}}/etc/observatory/ca-secret{{- end -}}
{{- define "obs.caDir" -}}/run/observatory/ca{{- end -}}
{{- define "obs.brokerCaDir" -}}/etc/observatory/broker-ca{{- end -}}

{{/* Mode checks: fail early with a clear message. ----------------------- */}}
{{- define "obs.validate" -}}
{{- $h := .Values.hub -}}
{{- $mqtt := $h.mqtt.kind -}}
{{- $stream := $h.stream.kind -}}
{{- $store := $h.store.kind -}}
{{- if not (has $mqtt (list "embedded" "external")) -}}
{{- fail (printf "hub.mqtt.kind must be embedded or external, not %q" $mqtt) -}}
{{- end -}}
{{- if not (has $stream (list "none" "kafka")) -}}
{{- fail (printf "hub.stream.kind must be none or kafka, not %q" $stream) -}}
{{- end -}}
{{- if not (has $store (list "sqlite" "cassandra")) -}}
{{- fail (printf "hub.store.kind must be sqlite or cassandra, not %q" $store) -}}
{{- end -}}
{{- $distributed := and (eq $mqtt "external") (eq $stream "kafka") (eq $store "cassandra") -}}
{{- if and (not $distributed) (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) -}}
{{- fail "more than one hub replica (replicaCount > 1 or autoscaling.enabled) needs hub.mqtt.kind=external, hub.stream.kind=kafka and hub.store.kind=cassandra: the embedded broker, SQLite and the direct (stream=none) ingest each belong to one process" -}}
{{- end -}}
{{- if and (eq $store "sqlite") (not .Values.persistence.enabled) -}}
{{- fail "hub.store.kind=sqlite keeps every record in the data dir: set persistence.enabled=true (values-embedded.yaml does)" -}}
{{- end -}}
{{- if and .Values.ca.existingSecret .Values.ca.create -}}
{{- fail "set either ca.existingSecret or ca.create, not both" -}}
{{- end -}}
{{- if and .Values.ca.create (or (not .Values.ca.cert) (not .Values.ca.key)) -}}
{{- fail "ca.create=true needs ca.cert and ca.key (--set-file ca.cert=ca.pem --set-file ca.key=ca.key)" -}}
{{- end -}}
{{- if and (not (include "obs.caSecretName" .)) (not .Values.persistence.enabled) -}}
{{- fail "the hub CA must survive restarts and be the same for every replica: give ca.existingSecret (or ca.create), or set persistence.enabled=true so the hub keeps the CA it creates" -}}
{{- end -}}
{{- if and .Values.adminTokenJob.enabled (ne $store "cassandra") -}}
{{- fail "adminTokenJob needs hub.store.kind=cassandra; with SQLite mint the token in the pod (kubectl exec ... cloud-hub admin token)" -}}
{{- end -}}
{{- if and (eq $stream "kafka") (not $h.stream.bootstrap) -}}
{{- fail "hub.stream.bootstrap is required with hub.stream.kind=kafka" -}}
{{- end -}}
{{- if and (eq $store "cassandra") (not $h.store.nodes) -}}
{{- fail "hub.store.nodes needs at least one contact point with hub.store.kind=cassandra" -}}
{{- end -}}
{{- if and (eq $mqtt "external") (not $h.mqtt.host) -}}
{{- fail "hub.mqtt.host is required with hub.mqtt.kind=external" -}}
{{- end -}}
{{- end -}}

{{/* hub.toml rendered from .Values.hub (strings via toJson: a JSON string is a TOML basic string). */}}
{{- define "obs.hubToml" -}}
{{- $h := .Values.hub -}}
# Rendered by the observatory-hub Helm chart from values (hub.*).
# Environment variables OBS_HUB__SECTION__KEY override this file.
data_dir = {{ $h.dataDir | toJson }}
public_host = {{ $h.publicHost | toJson }}

[grpc]
listen = {{ printf "0.0.0.0:%d" (int $h.grpcPort) | toJson }}

[http]
listen = {{ printf "0.0.0.0:%d" (int $h.httpPort) | toJson }}
{{- if not (kindIs "invalid" $h.dashboard) }}
dashboard = {{ $h.dashboard }}
{{- end }}

[mqtt]
kind = {{ $h.mqtt.kind | toJson }}
{{- if eq $h.mqtt.kind "embedded" }}
listen = {{ printf "0.0.0.0:%d" (int $h.mqtt.embeddedPort) | toJson }}
{{- else }}
host = {{ $h.mqtt.host | toJson }}
port = {{ int $h.mqtt.port }}
shared_group = {{ $h.mqtt.sharedGroup | toJson }}
{{- if $h.mqtt.brokerCaSecret }}
broker_ca = {{ printf "%s/%s" (include "obs.brokerCaDir" .) $h.mqtt.brokerCaSecretKey | toJson }}
{{- end }}
{{- end }}

[stream]
kind = {{ $h.stream.kind | toJson }}
{{- if eq $h.stream.kind "kafka" }}
bootstrap = {{ $h.stream.bootstrap | toJson }}
partitions = {{ int $h.stream.partitions }}
replication_factor = {{ int $h.stream.replicationFactor }}
sink_group = {{ $h.stream.sinkGroup | toJson }}
sink_concurrency = {{ int $h.stream.sinkConcurrency }}
# sink_instance_id comes from OBS_HUB__STREAM__SINK_INSTANCE_ID (the pod name) when set.
sink_session_timeout_ms = {{ int $h.stream.sinkSessionTimeoutMs }}
topic_namespace = {{ $h.stream.topicNamespace | toJson }}
{{- end }}

[store]
kind = {{ $h.store.kind | toJson }}
{{- if eq $h.store.kind "sqlite" }}
file = {{ $h.store.sqliteFile | toJson }}
{{- else }}
nodes = {{ $h.store.nodes | toJson }}
keyspace = {{ $h.store.keyspace | toJson }}
replication_factor = {{ int $h.store.replicationFactor }}
sample_ttl_days = {{ int $h.store.sampleTtlDays }}
{{- end }}

[limits]
max_batch_bytes = {{ int $h.limits.maxBatchBytes }}
max_samples = {{ int $h.limits.maxSamples }}
max_string_bytes = {{ int $h.limits.maxStringBytes }}

[pki]
node_certificate_hours = {{ int $h.pki.nodeCertificateHours }}
{{- if include "obs.caSecretName" . }}
# The CA from the Secret, copied with mode 0600 by the init container.
ca_cert = {{ printf "%s/ca.pem" (include "obs.caDir" .) | toJson }}
ca_key = {{ printf "%s/ca.key" (include "obs.caDir" .) | toJson }}
{{- end }}

[health]
enabled = {{ $h.health.enabled }}
model = {{ $h.health.model | toJson }}
interval_s = {{ int $h.health.intervalS }}
{{- end -}}
