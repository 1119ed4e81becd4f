#!/usr/bin/env bash
# compose `pki-init` (runs once, as root, in the hub image): the hub CA, the
# Mosquitto server certificate signed by it, and the ownership of the shared
# volumes. Idempotent: keeps a CA that exists; reissues the broker certificate
# only when it is missing, not signed by the current CA, or within 30 days of
# expiry.
set -euo pipefail

PKI=${OBS_COMPOSE_PKI_DIR:-/pki}
JOIN=${OBS_COMPOSE_JOIN_DIR:-/join}
HUB_DATA=${OBS_COMPOSE_HUB_DATA:-/var/lib/cloud-hub}
HUB_UID=${OBS_COMPOSE_HUB_UID:-10001}            # user `obs` of infra/docker/Dockerfile
MOSQUITTO_UID=${OBS_COMPOSE_MOSQUITTO_UID:-1883}  # user `mosquitto` of the eclipse-mosquitto image
BROKER_NAMES=${OBS_COMPOSE_BROKER_NAMES:-DNS:mosquitto,DNS:localhost,IP:127.0.0.1}

log() { printf 'pki-init: %s\n' "$*" >&2; }

umask 022
mkdir -p "$PKI/mosquitto" "$JOIN" "$HUB_DATA"

if [[ ! -s "$PKI/ca.pem" || ! -s "$PKI/ca.key" ]]; then
  log "creating the hub CA in $PKI"
  rm -f "$PKI/ca.pem" "$PKI/ca.key" "$PKI/mosquitto/server.pem" "$PKI/mosquitto/server.key"
  # PKCS#8 PEM ECDSA P-256: the format the hub (rcgen) loads.
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key")
  openssl req -new -x509 -key "$PKI/ca.key" -sha256 -days 3650 \
    -subj "/O=observatory compose/CN=observatory compose hub CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$PKI/ca.pem"
fi
# The hub refuses a CA key that group or others can read.
chown "$HUB_UID:$HUB_UID" "$PKI/ca.key"
chmod 0600 "$PKI/ca.key"
chmod 0644 "$PKI/ca.pem"

server="$PKI/mosquitto/server"
if [[ ! -s "$server.pem" || ! -s "$server.key" ]] \
    || ! openssl verify -CAfile "$PKI/ca.pem" "$server.pem" >/dev/null 2>&1 \
    || ! openssl x509 -in "$server.pem" -noout -checkend 2592000 >/dev/null 2>&1; then
  log "issuing the Mosquitto server certificate ($BROKER_NAMES)"
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$server.key")
  openssl req -new -key "$server.key" -subj "/CN=mosquitto" -out "$server.csr"
  openssl x509 -req -in "$server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 825 -sha256 -out "$server.pem" \
    -extfile <(printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth" \
      "subjectKeyIdentifier=hash" \
      "authorityKeyIdentifier=keyid" \
      "subjectAltName=$BROKER_NAMES") 2>/dev/null
  rm -f "$server.csr"
fi
# Mosquitto drops to its own user before it reads certificates.
chown -R "$MOSQUITTO_UID:$MOSQUITTO_UID" "$PKI/mosquitto"
chmod 0750 "$PKI/mosquitto"
chmod 0600 "$server.key"
chmod 0644 "$server.pem"

# Join commands and the bootstrap admin token: the hub's user only.
chown "$HUB_UID:$HUB_UID" "$JOIN"
chmod 0700 "$JOIN"
# The hub's data dir: Mosquitto reads the CRL the hub writes to pki/crl.pem.
chown "$HUB_UID:$HUB_UID" "$HUB_DATA"
chmod 0755 "$HUB_DATA"

log "CA $(openssl x509 -in "$PKI/ca.pem" -noout -fingerprint -sha256 | cut -d= -f2)"
log "done"
