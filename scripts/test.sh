#!/usr/bin/env bash
# The whole test suite: unit, property and end-to-end tests of every crate, then the third-party
# SCIM conformance suite (scim2-tester, from PyPI) against a live `scimflow serve`.
# This is the test command the README gives; .ci/run runs exactly this.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/scimflow/target}

echo "==> cargo test --workspace"
cargo test --workspace --locked

echo "==> SCIM conformance (scim2-tester) against scimflow serve"
"$ROOT/scripts/conformance.sh"
