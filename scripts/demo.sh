#!/usr/bin/env bash
# The project's main job (README): the whole system on one machine, in the
# embedded mode (no Kafka, Cassandra or Mosquitto needed). Extra arguments go
# to `cloud-hub demo`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/setup.sh
cargo build --locked --bins
exec target/debug/cloud-hub demo "$@"
