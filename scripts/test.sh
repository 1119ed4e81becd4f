#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing,
# starts the real Kafka, Cassandra and Mosquitto, runs format, lint and every
# test against them, and stops the services whatever happens. The tests
# include the dashboard's browser test (cloud-hub/tests/dashboard_browser.rs:
# headless Chromium through tests/browser/, installed by setup.sh), which
# leaves its screenshot in target/browser/dashboard.png.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/setup.sh
trap 'bash scripts/services.sh down' EXIT
# Every run starts from empty services, as on a fresh CI machine (tests make
# their own topics and keyspaces; thousands of old tables slow Cassandra's
# schema changes down).
bash scripts/services.sh reset
bash scripts/services.sh up
eval "$(bash scripts/services.sh env)"

echo "test: cargo fmt --check"
cargo fmt --all --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "test: node --check tests/browser/dashboard.test.mjs"
node --check tests/browser/dashboard.test.mjs
echo "test: cargo test"
cargo test --workspace --locked
if [ -f target/browser/dashboard.png ]; then
  echo "test: dashboard screenshot in target/browser/dashboard.png"
fi
echo "test: scripts/validate-infra.sh (Helm chart, compose file, Dockerfile)"
bash scripts/validate-infra.sh
