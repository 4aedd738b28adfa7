#!/usr/bin/env bash
# Runs the third-party conformance suite scim2-tester (PyPI) against a live, freshly started
# `scimflow serve` and fails if any check fails. The venv is cached outside the checkout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/scimflow/target}
VENV=${SCIMFLOW_TOOLS_VENV:-$HOME/.cache/scimflow/venv}
PORT=${CONFORMANCE_PORT:-18080}

if [ ! -f "$VENV/.scim2-tester-ok" ]; then
  echo "installing scim2-tester into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'scim2-tester==0.5.2' 'scim2-client==0.13.2' 'httpx2==2.16.2' && touch "$VENV/.scim2-tester-ok"
fi

cargo build --locked --bin scimflow
DATA=$(mktemp -d)
SERVER_LOG=$DATA/server.log
cleanup() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT
TOKEN=$("$CARGO_TARGET_DIR/debug/scimflow" tenant create conformance --data-dir "$DATA/data" --quiet)
"$CARGO_TARGET_DIR/debug/scimflow" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA/data" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
"$VENV/bin/python" "$ROOT/scripts/conformance.py" "http://127.0.0.1:$PORT/scim/v2" "$TOKEN" || {
  echo "conformance failed; server log tail:"; tail -40 "$SERVER_LOG"; exit 1; }
