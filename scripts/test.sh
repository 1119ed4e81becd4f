#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing,
# starts the real Kafka, Cassandra and Mosquitto, runs format, lint and every
# test against them, and stops the services whatever happens.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/setup.sh
trap 'bash scripts/services.sh down' EXIT
bash scripts/services.sh up
eval "$(bash scripts/services.sh env)"

echo "test: cargo fmt --check"
cargo fmt --all --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "test: cargo test"
cargo test --workspace --locked
