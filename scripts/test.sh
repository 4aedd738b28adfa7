#!/usr/bin/env bash
# The whole test suite — the test command the README gives, and what .ci/run runs:
#   1. builds every crate's tests,
#   2. starts real Kafka and Cassandra (deploy/local/services.sh; skipped with SCIMFLOW_NO_SERVICES=1,
#      in which case the Kafka and CQL adapter tests print SKIPPED),
#   3. runs the unit, property, contract and end-to-end tests of every crate,
#   4. runs the third-party SCIM conformance suite (scim2-tester) against a live `scimflow serve`,
#   5. validates the deployment artifacts (Dockerfile, compose, Kubernetes; scripts/validate-deploy.sh).
# Services this script started are stopped again on exit, also on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/scimflow/target}

echo "==> building tests"
cargo test --workspace --locked --no-run

if [ -z "${SCIMFLOW_NO_SERVICES:-}" ]; then
  fresh=""
  if ! deploy/local/services.sh status >/dev/null 2>&1; then
    # Started here: start from empty data (tests leave topics and keyspaces behind) and stop
    # them again on exit. Services someone else started are left as they are.
    fresh="--fresh"
    trap 'deploy/local/services.sh down >&2 || true' EXIT
  fi
  echo "==> starting Kafka and Cassandra"
  services_env=$(deploy/local/services.sh $fresh up)
  # `up` prints SCIMFLOW_KAFKA_BROKERS=... and SCIMFLOW_CQL_NODES=... on stdout.
  while IFS= read -r line; do
    case $line in SCIMFLOW_*=*) export "${line?}" ;; esac
  done <<<"$services_env"
fi

echo "==> cargo test --workspace"
cargo test --workspace --locked

echo "==> SCIM conformance (scim2-tester) against scimflow serve"
"$ROOT/scripts/conformance.sh"

echo "==> deployment artifacts (Dockerfile, compose, Kubernetes)"
"$ROOT/scripts/validate-deploy.sh" --self-test
