#!/usr/bin/env bash
# Side-by-side benchmark: the same scimflow-simulate workload (same seed, profile, sizes,
# concurrency) against a fresh scimflow and a fresh reference peer, scim2-server from PyPI,
# both on loopback, one after the other. Prints a side-by-side table with ratios.
#
# usage: scripts/compare-peer.sh [--out DIR] [--no-build] [--only scimflow|peer] [-- SIMULATOR ARGS...]
#
# SIMULATOR ARGS replace the default workload (see DEFAULT_WORKLOAD below); --url, --token,
# --report-json and --plot are added by this script.
#
# Environment: CARGO_TARGET_DIR (default $HOME/.cache/scimflow/target), PEER_VENV (default
# $HOME/.cache/scimflow/peer-venv), PEER_VERSION (default 0.8.3), PYTHON (default python3),
# PEER_SERVER (gunicorn, the default: scripts/peer/peer_wsgi.py under gunicorn, one gthread
# worker with PEER_THREADS=8 threads, since the peer's storage is in-process memory; or cli:
# the package's own `scim2-server` command, a wsgiref HTTP/1.0 server with a listen backlog of 5).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/scimflow/target}"
PEER_VENV="${PEER_VENV:-$HOME/.cache/scimflow/peer-venv}"
PEER_VERSION="${PEER_VERSION:-0.8.3}"
PYTHON="${PYTHON:-python3}"
PEER_SERVER="${PEER_SERVER:-gunicorn}"      # gunicorn | cli
GUNICORN_VERSION="${GUNICORN_VERSION:-27.0.1}"
PEER_THREADS="${PEER_THREADS:-8}"
OUT=""
BUILD=1
ONLY=""

# Sized so that the Python peer finishes in a few minutes on 2 cores: every IdP step of the
# standard profile (probe, users, managers, groups, members, churn, verify), at 1/10 of its
# users, with one 1,500-member group (the standard profile has 20,000 users, 10,000 in one group).
# Okta shapes: the peer refuses Entra's (docs/peer-comparison.md). A 120 s request timeout,
# because the peer's slowest PATCHes take over a minute and a 30 s timeout turns them into
# retries and unknown outcomes instead of measurements.
DEFAULT_WORKLOAD=(--profile standard --seed 42 --idp okta --concurrency 8
                  --users 2000 --groups 60 --largest-group 1500 --churn-ops 1000 --timeout 120)

while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --only) ONLY="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (simulator arguments go after --)" >&2; exit 2 ;;
    esac
done
if [ $# -gt 0 ]; then WORKLOAD=("$@"); else WORKLOAD=("${DEFAULT_WORKLOAD[@]}"); fi
OUT="${OUT:-$ROOT/target/peer-comparison/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    done
    [ -n "${DATA:-}" ] && rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() { # URL [TOKEN]
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null -H "Authorization: Bearer ${2:-x}" "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server at $1 did not come up" >&2; return 1
}

# --- build and install -------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p scimflow -p scimflow-simulator)
fi
SCIMFLOW="$CARGO_TARGET_DIR/release/scimflow"
SIMULATE="$CARGO_TARGET_DIR/release/scimflow-simulate"
if [ ! -x "$PEER_VENV/bin/scim2-server" ] || \
   [ "$("$PEER_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("scim2-server"))' 2>/dev/null)" != "$PEER_VERSION" ]; then
    "$PYTHON" -m venv "$PEER_VENV"
    "$PEER_VENV/bin/pip" install -q "scim2-server==$PEER_VERSION"
fi
if [ "$PEER_SERVER" = gunicorn ] && [ ! -x "$PEER_VENV/bin/gunicorn" ]; then
    "$PEER_VENV/bin/pip" install -q "gunicorn==$GUNICORN_VERSION"
fi

# --- the machine ---------------------------------------------------------------------------
{
    echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host:      $(uname -srm)"
    echo "cpu:       $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "cpus:      $(nproc)"
    echo "memory:    $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
    echo "load:      $(uptime | sed 's/.*load average: //') (1/5/15 min, before the runs)"
    echo "scimflow:  $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' (dirty tree)'), release build"
    echo "rustc:     $(rustc --version)"
    echo "peer:      scim2-server $PEER_VERSION, scim2-models $("$PEER_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("scim2-models"))'), $("$PEER_VENV/bin/python" --version)"
    if [ "$PEER_SERVER" = gunicorn ]; then
        echo "peer mode: scim2-server app (CLI defaults, in-memory storage, bearer token) under gunicorn $GUNICORN_VERSION -w 1 -k gthread --threads $PEER_THREADS"
    else
        echo "peer mode: scim2-server CLI (wsgiref ThreadingWSGIServer, in-memory storage, --bearer-token)"
    fi
    echo "workload:  ${WORKLOAD[*]}"
} | tee "$OUT/machine.txt"

run_sim() { # NAME URL TOKEN
    local name="$1" url="$2" token="$3" rc=0
    echo "--- $name: scimflow-simulate ${WORKLOAD[*]} --url $url"
    "$SIMULATE" "${WORKLOAD[@]}" --url "$url" --token "$token" \
        --report-json "$OUT/$name.json" --plot "$OUT/$name.svg" > "$OUT/$name.txt" 2>&1 || rc=$?
    echo "    exit $rc (0 passed, 1 failed a check, 2 could not start); report in $OUT/$name.txt"
    [ "$rc" -le 1 ] || { tail -20 "$OUT/$name.txt" >&2; return 1; }
}

# --- scimflow --------------------------------------------------------------------------------
if [ "$ONLY" != peer ]; then
    DATA="$(mktemp -d)"
    TOKEN="$("$SCIMFLOW" tenant create bench --data-dir "$DATA" --quiet)"
    PORT="$(free_port)"
    "$SCIMFLOW" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" > "$OUT/scimflow-server.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$PORT/scim/v2/ServiceProviderConfig" "$TOKEN"
    run_sim scimflow "http://127.0.0.1:$PORT/scim/v2" "$TOKEN"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'
    rm -rf "$DATA"; DATA=""
fi

# --- the peer: scim2-server ------------------------------------------------------------------
if [ "$ONLY" != scimflow ]; then
    PTOKEN="peer-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
    PORT="$(free_port)"
    if [ "$PEER_SERVER" = gunicorn ]; then
        PEER_TOKEN="$PTOKEN" "$PEER_VENV/bin/gunicorn" -w 1 -k gthread --threads "$PEER_THREADS" \
            -b "127.0.0.1:$PORT" --chdir "$ROOT/scripts/peer" --no-control-socket peer_wsgi:app \
            > "$OUT/peer-server.log" 2>&1 &
    else
        "$PEER_VENV/bin/scim2-server" --hostname 127.0.0.1 --port "$PORT" --bearer-token "$PTOKEN" \
            > "$OUT/peer-server.log" 2>&1 &
    fi
    PIDS+=($!)
    wait_http "http://127.0.0.1:$PORT/v2/ServiceProviderConfig" "$PTOKEN"
    run_sim peer "http://127.0.0.1:$PORT/v2" "$PTOKEN"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'
fi

echo "load after: $(uptime | sed 's/.*load average: //')" | tee -a "$OUT/machine.txt"

# --- the table -------------------------------------------------------------------------------
if [ -f "$OUT/scimflow.json" ] && [ -f "$OUT/peer.json" ]; then
    "$PYTHON" "$ROOT/scripts/peer/compare_table.py" "$OUT/scimflow.json" "$OUT/peer.json" | tee "$OUT/table.txt"
    "$PYTHON" "$ROOT/scripts/peer/compare_table.py" --markdown "$OUT/scimflow.json" "$OUT/peer.json" > "$OUT/table.md"
    echo; echo "reports, plots, logs and table.md in $OUT"
fi
