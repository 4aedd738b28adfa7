#!/usr/bin/env bash
# deploy/local/services.sh - run a REAL Apache Kafka 4.x broker (KRaft, one combined
# broker+controller) and a REAL Apache Cassandra 5.0 node on 127.0.0.1 for tests and CI.
#
# Both are assembled from Maven Central artifacts with the machine's `mvn` and run on Java 17:
# no Docker, no tarball downloads (only package registries are reachable on our machines).
# See docs/services.md for what the first real runs measured and why things are as they are.
#
# Usage: services.sh [--fresh] up [kafka|cassandra|all]   start (default all), wait until ready
#        services.sh down [kafka|cassandra|all]            stop (SIGTERM, wait, SIGKILL)
#        services.sh status                                 state of both (exit 3 if one is down)
#        services.sh logs kafka|cassandra [-f]              tail (or follow) a service's log
#        services.sh reset [kafka|cassandra|all]            stop and wipe data/logs/configs
#        services.sh env                                    print the SCIMFLOW_* env lines
#
# Progress goes to stderr; `up` and `env` print only the env lines on stdout, e.g.
#   deploy/local/services.sh up >/tmp/services.env && set -a && . /tmp/services.env && set +a
set -euo pipefail

# ---- settings (all overridable from the environment) ---------------------------------------
KAFKA_VERSION=${KAFKA_VERSION:-4.1.2}
# Kafka's POMs ship no logging backend binding: kafka-server brings log4j-core, but slf4j-api
# is 1.7.36, so the binding must be log4j-slf4j-impl (the slf4j 1.x one) at the same log4j
# version; pin api/core/binding together (2.25.3 is what Kafka 4.1.2 itself depends on).
LOG4J_VERSION=${LOG4J_VERSION:-2.25.3}
CASSANDRA_VERSION=${CASSANDRA_VERSION:-5.0.9}
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

CACHE=${SERVICES_CACHE:-${HOME:-/root}/.cache/scimflow-services}
STATE=${SERVICES_STATE:-$CACHE/state}
# Maven's local repository lives inside the cache too, so wiping $CACHE really starts from
# scratch and ~/.m2 is left alone. Point SERVICES_M2 at ~/.m2/repository to share it instead.
M2_REPO=${SERVICES_M2:-$CACHE/m2}

HOST=127.0.0.1
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
CASSANDRA_PORT=${CASSANDRA_PORT:-9042}
CASSANDRA_STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-7000}
# Empty = no JMX (Cassandra 5.0 starts no JMX server unless a port is given). Set e.g. 7199 to
# get a local-only JMX listener for nodetool.
CASSANDRA_JMX_PORT=${CASSANDRA_JMX_PORT:-}

KAFKA_HEAP=${KAFKA_HEAP:-512m}
CASSANDRA_HEAP=${CASSANDRA_HEAP:-768m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
CASSANDRA_START_TIMEOUT=${CASSANDRA_START_TIMEOUT:-300}
STOP_TIMEOUT=${SERVICES_STOP_TIMEOUT:-45}

ALL_SERVICES=(kafka cassandra)

# ---- small helpers ---------------------------------------------------------------------------
log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '9,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Cassandra 5.0 runs on Java 11 or 17 only, Kafka 4.x brokers need 17+: so Java 17 it is.
# SERVICES_JAVA wins; then Debian's 17; then whatever `java` is on PATH. JAVA_HOME is not
# consulted on purpose: some projects point it at Java 25, which Cassandra 5.0 refuses.
find_java() {
  local candidate version
  for candidate in "${SERVICES_JAVA:-}" /usr/lib/jvm/java-17-openjdk-amd64/bin/java \
                   "$(command -v java 2>/dev/null || true)"; do
    [[ -n $candidate && -x $candidate ]] || continue
    version=$("$candidate" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    if [[ $version == 17 ]]; then
      JAVA=$candidate
      return 0
    fi
    log "skipping $candidate (Java $version; need 17)"
  done
  die "no Java 17 found (set SERVICES_JAVA=/path/to/java17/bin/java)"
}

svc_dir() { printf '%s/%s' "$STATE" "$1"; }
pid_file() { printf '%s/%s.pid' "$(svc_dir "$1")" "$1"; }
log_file() { printf '%s/logs/%s.log' "$(svc_dir "$1")" "$1"; }
lib_dir() {
  case $1 in
    kafka) printf '%s/kafka-%s/lib' "$CACHE" "$KAFKA_VERSION" ;;
    cassandra) printf '%s/cassandra-%s/lib' "$CACHE" "$CASSANDRA_VERSION" ;;
  esac
}
client_port() { if [[ $1 == kafka ]]; then echo "$KAFKA_PORT"; else echo "$CASSANDRA_PORT"; fi; }

port_open() { # port -> 0 if something accepts TCP connections on $HOST:port
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# The pid file alone is not trusted (pids get reused): the process must also carry the
# -Dscimflow.service=NAME marker that start_jvm puts on its command line.
running_pid() { # name -> prints pid and returns 0 if our JVM for NAME is alive
  local pf pid
  pf=$(pid_file "$1")
  [[ -f $pf ]] || return 1
  pid=$(<"$pf")
  [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qx -- "-Dscimflow.service=$1" || return 1
  echo "$pid"
}

rss_mb() { # pid -> resident set size in MiB
  awk '/^VmRSS:/ {printf "%d", $2/1024}' "/proc/$1/status" 2>/dev/null || echo '?'
}

env_line() {
  case $1 in
    kafka) echo "SCIMFLOW_KAFKA_BROKERS=$HOST:$KAFKA_PORT" ;;
    cassandra) echo "SCIMFLOW_CQL_NODES=$HOST:$CASSANDRA_PORT" ;;
  esac
}

# ---- fetching jars from Maven Central ------------------------------------------------------
# A throw-away POM lists the wanted coordinates; maven-dependency-plugin copies their runtime
# closure into lib/. A `.complete` marker makes later runs skip Maven entirely (warm start).
fetch() { # name coords...
  local name=$1; shift
  local lib top work mvn_log coord g a v
  lib=$(lib_dir "$name")
  top=$(dirname "$lib")
  [[ -f $top/.complete ]] && return 0
  command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
  log "$name: resolving $* from Maven Central (first run only)"
  rm -rf "$top"
  mkdir -p "$lib" "$M2_REPO"
  work=$top/pom.xml
  {
    echo '<project><modelVersion>4.0.0</modelVersion>'
    echo "<groupId>local.scimflow</groupId><artifactId>$name-runtime</artifactId>"
    echo '<version>1</version><packaging>pom</packaging><dependencies>'
    for coord in "$@"; do
      IFS=: read -r g a v <<<"$coord"
      echo "<dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>"
    done
    echo '</dependencies></project>'
  } >"$work"
  mvn_log=$top/mvn.log
  # -U: retry artifacts whose earlier download failed (Maven caches failures otherwise).
  # SERVICES_MVN_ARGS: e.g. "-s /path/settings.xml" for a mirror (word-split on purpose).
  # shellcheck disable=SC2086
  if ! mvn -B -U -Dstyle.color=never -Dmaven.repo.local="$M2_REPO" ${SERVICES_MVN_ARGS:-} -f "$work" \
        -DincludeScope=runtime -DoutputDirectory="$lib" \
        "$DEPENDENCY_PLUGIN:copy-dependencies" >"$mvn_log" 2>&1; then
    local failing_lines failed
    failing_lines=$(grep -E 'Could not (find|resolve|transfer)|could not be resolved|Failed to (read|collect)|Non-resolvable' \
      "$mvn_log" || true)
    # group:artifact[:type]:version tokens named in those lines, minus our own throw-away POM
    failed=$(grep -oE '([A-Za-z0-9_.-]+:){2,4}[A-Za-z0-9_.-]+' <<<"$failing_lines" |
      grep -v '^local\.scimflow:' | sort -u | tr '\n' ' ' || true)
    log "$name: Maven could not fetch the artifacts."
    log "$name: requested:       $*"
    log "$name: FAILED to fetch: ${failed:-(see below)}"
    if [[ -n $failing_lines ]]; then
      printf '    %s\n' "${failing_lines//\[ERROR\] /}" >&2
    else
      tail -n 20 "$mvn_log" >&2
    fi
    log "$name: full Maven log: $mvn_log"
    exit 1
  fi
  touch "$top/.complete"
  log "$name: $(find "$lib" -name '*.jar' | wc -l) jars, $(du -sh "$lib" | cut -f1) in $lib"
}

fetch_kafka() {
  # kafka-tools is optional for the broker but gives us CLI tools on the same classpath
  # (kafka-topics, console producer/consumer) for debugging: see docs/services.md.
  fetch kafka "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" \
              "org.apache.kafka:kafka-tools:$KAFKA_VERSION" \
              "org.apache.logging.log4j:log4j-api:$LOG4J_VERSION" \
              "org.apache.logging.log4j:log4j-core:$LOG4J_VERSION" \
              "org.apache.logging.log4j:log4j-slf4j-impl:$LOG4J_VERSION"
}

fetch_cassandra() {
  # cassandra-all's runtime closure already contains logback (its slf4j backend) and jamm.
  fetch cassandra "org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION"
}

# ---- configuration files (regenerated on every `up`, so env overrides take effect) ----------
write_kafka_conf() {
  local dir conf
  dir=$(svc_dir kafka)
  conf=$dir/conf
  mkdir -p "$conf" "$dir/data" "$dir/logs"
  cat >"$conf/server.properties" <<EOF
# generated by deploy/local/services.sh - edits are overwritten on every 'up'
process.roles=broker,controller
node.id=1
# KIP-853 dynamic quorum: formatted once with 'StorageTool format --standalone'
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
# The app creates its topics with the AdminClient (CreateTopics); typos must not create topics.
auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-false}
num.partitions=3
# single node: every internal topic with replication factor 1, few partitions (fast start)
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
# tests join consumer groups all the time: do not wait 3 s for more members
group.initial.rebalance.delay.ms=0
# 2-core machine
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
EOF
  # Everything to the console; start_jvm redirects the console into logs/kafka.log.
  cat >"$conf/log4j2.properties" <<'EOF'
status = warn
name = scimflow-kafka
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
  # For the one-shot StorageTool runs: warnings only, and to stderr, because `random-uuid`
  # prints the id on stdout (with the broker config above its INFO lines ended up in the id).
  cat >"$conf/tools-log4j2.properties" <<'EOF'
status = warn
name = scimflow-kafka-tools
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
}

write_cassandra_conf() {
  local dir conf data
  dir=$(svc_dir cassandra)
  conf=$dir/conf
  data=$dir/data
  mkdir -p "$conf" "$data" "$dir/logs"
  cat >"$conf/cassandra.yaml" <<EOF
# generated by deploy/local/services.sh - edits are overwritten on every 'up'
# Single dev/test node; modelled on Cassandra's own test/conf/cassandra.yaml.
cluster_name: scimflow-dev
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$CASSANDRA_STORAGE_PORT"
listen_address: $HOST
rpc_address: $HOST
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CASSANDRA_PORT
start_native_transport: true
# A brand-new cluster: enable 5.0 storage features instead of staying 4.x compatible.
storage_compatibility_mode: NONE
data_file_directories:
  - $data/data
commitlog_directory: $data/commitlog
saved_caches_directory: $data/saved_caches
hints_directory: $data/hints
cdc_raw_directory: $data/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 8MiB
# authenticator/authorizer left at their AllowAll defaults (no credentials in tests)
memtable_allocation_type: heap_buffers
concurrent_reads: 4
concurrent_writes: 4
concurrent_counter_writes: 4
concurrent_compactors: 1
# keep off-heap caches small so RSS stays predictable next to cargo builds
file_cache_size: 64MiB
key_cache_size: 16MiB
# tests drop keyspaces constantly; snapshots on drop/truncate would only fill the disk
auto_snapshot: false
# ScyllaDB (production) accepts much larger batches than Cassandra's 50KiB default
batch_size_warn_threshold: 64KiB
batch_size_fail_threshold: 1MiB
materialized_views_enabled: false
EOF
  # logback is Cassandra's slf4j backend (from cassandra-all's deps); without a config file it
  # logs everything at DEBUG. Console only: start_jvm redirects it into logs/cassandra.log.
  cat >"$conf/logback.xml" <<'EOF'
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
}

# ---- starting, waiting, stopping ---------------------------------------------------------------
start_jvm() { # name java-args... -> starts detached, writes pid file
  local name=$1; shift
  local lf pf pid
  lf=$(log_file "$name")
  pf=$(pid_file "$name")
  [[ -f $lf ]] && mv -f "$lf" "$lf.1" # keep exactly one previous run's log
  # setsid: the JVM gets its own session, so Ctrl-C on this script (or its terminal closing)
  # does not take the service down; `down` is the way to stop it.
  # 9>&-: the JVM must not inherit the lock taken in main(), or it would hold it forever.
  setsid nohup "$JAVA" "-Dscimflow.service=$name" "$@" >"$lf" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$pf"
  # Until the forked shell has exec'd java, /proc/PID/cmdline is still this script's: wait for
  # the marker so running_pid() does not report a healthy JVM as dead.
  local i
  for ((i = 0; i < 50; i++)); do
    running_pid "$name" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  running_pid "$name" >/dev/null || log "$name: pid $pid did not turn into the JVM"
}

wait_ready() { # name port log-pattern timeout-seconds launched-at($SECONDS)
  local name=$1 port=$2 pattern=$3 timeout=$4 start=$5 lf pid
  lf=$(log_file "$name")
  while ((SECONDS - start < timeout)); do
    if ! running_pid "$name" >/dev/null; then
      log "$name exited during startup; last lines of $lf:"
      tail -n 60 "$lf" >&2
      rm -f "$(pid_file "$name")"
      return 1
    fi
    if grep -q -- "$pattern" "$lf" 2>/dev/null && port_open "$port"; then
      pid=$(running_pid "$name")
      log "$name: ready on $HOST:$port after $((SECONDS - start)) s (pid $pid, RSS $(rss_mb "$pid") MiB)"
      return 0
    fi
    sleep 1
  done
  log "$name not ready after ${timeout} s (waiting for '$pattern' and port $port); last lines of $lf:"
  tail -n 60 "$lf" >&2
  stop_service "$name" # a half-started JVM would only confuse the next attempt
  return 1
}

stop_service() { # name: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL; fine if not running
  local name=$1 pid waited=0
  if ! pid=$(running_pid "$name"); then
    rm -f "$(pid_file "$name")"
    log "$name: not running"
    return 0
  fi
  log "$name: stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  # running_pid, not `kill -0`: a zombie (exited, not yet reaped) still answers kill -0
  while running_pid "$name" >/dev/null && ((waited < STOP_TIMEOUT)); do
    sleep 1
    waited=$((waited + 1))
  done
  if running_pid "$name" >/dev/null; then
    log "$name: still alive after ${STOP_TIMEOUT} s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$(pid_file "$name")"
  log "$name: stopped after ${waited} s"
}

refuse_foreign_listener() { # name port: something else already on our port -> clear error
  if port_open "$2"; then
    die "$1: port $HOST:$2 is already in use by a process this script did not start (check: ss -ltnp 'sport = :$2')"
  fi
}

launch_kafka() {
  local dir lib cluster_id
  dir=$(svc_dir kafka)
  lib=$(lib_dir kafka)
  refuse_foreign_listener kafka "$KAFKA_PORT"
  refuse_foreign_listener kafka "$KAFKA_CONTROLLER_PORT"
  write_kafka_conf
  local tool=(-Dlog4j2.configurationFile="$dir/conf/tools-log4j2.properties" -cp "$lib/*")
  # KRaft storage must be formatted once. The controller endpoint is recorded in the metadata
  # log at format time, so changing KAFKA_CONTROLLER_PORT later needs `reset kafka` / --fresh.
  if [[ ! -f $dir/data/meta.properties ]]; then
    cluster_id=$("$JAVA" "${tool[@]}" kafka.tools.StorageTool random-uuid)
    [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] ||
      die "kafka: 'StorageTool random-uuid' printed '$cluster_id', not a cluster id"
    log "kafka: formatting KRaft storage (cluster id $cluster_id)"
    "$JAVA" "${tool[@]}" kafka.tools.StorageTool format --standalone \
      -t "$cluster_id" -c "$dir/conf/server.properties" >"$dir/logs/format.log" 2>&1 ||
      { cat "$dir/logs/format.log" >&2; die "kafka: storage format failed"; }
  fi
  local common=(-Dlog4j2.configurationFile="$dir/conf/log4j2.properties" -cp "$lib/*")
  start_jvm kafka -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dkafka.logs.dir="$dir/logs" \
    "${common[@]}" kafka.Kafka "$dir/conf/server.properties"
}

# JVM flags that bin/cassandra + cassandra-env.sh + conf/jvm17-server.options would add; we
# launch CassandraDaemon directly (bin/cassandra is not in the Maven artifacts).
cassandra_jvm_flags() {
  local lib=$1
  CASSANDRA_FLAGS=(
    # JPMS opens/exports from conf/jvm17-server.options (Cassandra 5.0)
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    # GC: stock G1 settings, sized for a 2-core machine
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
    -XX:G1HeapRegionSize=16m -XX:MaxGCPauseMillis=300
    -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1
    -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" -Xss256k
    -XX:+HeapDumpOnOutOfMemoryError -XX:+ExitOnOutOfMemoryError
    -XX:+PerfDisableSharedMem -Djava.net.preferIPv4Stack=true
    # cassandra-env.sh adds jamm as an agent: Cassandra measures object sizes with it
    -javaagent:"$(find "$lib" -name 'jamm-*.jar' | head -n1)"
  )
  if [[ -n $CASSANDRA_JMX_PORT ]]; then
    CASSANDRA_FLAGS+=(-Dcassandra.jmx.local.port="$CASSANDRA_JMX_PORT")
  fi
}

launch_cassandra() {
  local dir lib
  dir=$(svc_dir cassandra)
  lib=$(lib_dir cassandra)
  refuse_foreign_listener cassandra "$CASSANDRA_PORT"
  refuse_foreign_listener cassandra "$CASSANDRA_STORAGE_PORT"
  write_cassandra_conf
  cassandra_jvm_flags "$lib"
  start_jvm cassandra "${CASSANDRA_FLAGS[@]}" \
    -Dcassandra.config="file://$dir/conf/cassandra.yaml" \
    -Dlogback.configurationFile="$dir/conf/logback.xml" \
    -Dcassandra.logdir="$dir/logs" -Dcassandra.storagedir="$dir/data" \
    -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=100 \
    -cp "$dir/conf:$lib/*" org.apache.cassandra.service.CassandraDaemon
}

# ---- subcommands -------------------------------------------------------------------------------
# Callers use this in $(...) / <(...), where a `die` would only end the subshell: main()
# validates the name first with check_service.
check_service() {
  case ${1:-all} in
    all | kafka | cassandra) ;;
    *) die "unknown service '$1' (kafka, cassandra or all)" ;;
  esac
}
selected() { # [kafka|cassandra|all] -> names, one per line
  if [[ ${1:-all} == all ]]; then printf '%s\n' "${ALL_SERVICES[@]}"; else echo "$1"; fi
}

cmd_up() {
  local names name pid to_wait=() failed=0
  local -A launched_at=()
  mapfile -t names < <(selected "${1:-all}")
  find_java
  for name in "${names[@]}"; do
    "fetch_$name"
  done
  # Start everything first, then wait: the JVMs boot in parallel.
  for name in "${names[@]}"; do
    launched_at[$name]=$SECONDS
    to_wait+=("$name")
    if pid=$(running_pid "$name"); then
      # nothing to start; the wait below returns at once unless it is still booting
      log "$name: already running (pid $pid, RSS $(rss_mb "$pid") MiB)"
      continue
    fi
    mkdir -p "$(svc_dir "$name")"
    log "$name: starting (log: $(log_file "$name"))"
    "launch_$name"
  done
  for name in "${to_wait[@]}"; do
    case $name in
      kafka) wait_ready kafka "$KAFKA_PORT" 'Kafka Server started' \
               "$KAFKA_START_TIMEOUT" "${launched_at[kafka]}" || failed=1 ;;
      cassandra) wait_ready cassandra "$CASSANDRA_PORT" 'Starting listening for CQL clients' \
                   "$CASSANDRA_START_TIMEOUT" "${launched_at[cassandra]}" || failed=1 ;;
    esac
  done
  ((failed == 0)) || die "not all services came up (see above)"
  for name in "${names[@]}"; do env_line "$name"; done
}

cmd_down() { # services stop in parallel: Cassandra's shutdown alone takes several seconds
  local name pids=() rc=0
  for name in $(selected "${1:-all}"); do
    stop_service "$name" &
    pids+=($!)
  done
  for name in "${pids[@]}"; do wait "$name" || rc=1; done
  return "$rc"
}

cmd_status() {
  local name pid rc=0
  for name in "${ALL_SERVICES[@]}"; do
    if pid=$(running_pid "$name"); then
      local port
      port=$(client_port "$name")
      if port_open "$port"; then
        printf '%-9s running  pid %-7s RSS %5s MiB  %s:%s accepting  up %s\n' "$name" "$pid" \
          "$(rss_mb "$pid")" "$HOST" "$port" "$(ps -o etime= -p "$pid" | tr -d ' ')"
      else
        printf '%-9s starting pid %-7s (port %s not open yet)\n' "$name" "$pid" "$port"
        rc=3
      fi
    else
      printf '%-9s stopped\n' "$name"
      rc=3
    fi
  done
  printf 'cache %s (%s)\nstate %s\n' "$CACHE" "$(du -sh "$CACHE" 2>/dev/null | cut -f1)" "$STATE"
  return "$rc"
}

cmd_logs() {
  local name=${1:-} lf
  [[ $name == kafka || $name == cassandra ]] || die "usage: $0 logs kafka|cassandra [-f]"
  lf=$(log_file "$name")
  [[ -f $lf ]] || die "no log yet: $lf"
  if [[ ${2:-} == -f ]]; then exec tail -n 50 -F "$lf"; fi
  tail -n "${LOG_LINES:-100}" "$lf"
}

cmd_reset() {
  local name
  cmd_down "${1:-all}"
  for name in $(selected "${1:-all}"); do
    log "$name: wiping $(svc_dir "$name")"
    rm -rf "$(svc_dir "$name")"
  done
}

main() {
  local fresh=0 args=()
  while (($#)); do
    case $1 in
      --fresh) fresh=1 ;;
      -h | --help) usage ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  ((${#args[@]})) || usage
  local cmd=${args[0]} name
  [[ $cmd == logs ]] || check_service "${args[1]:-all}"
  if [[ $cmd == up || $cmd == down || $cmd == reset ]]; then
    # One state-changing run at a time per state dir (two CI steps or a test runner racing
    # each other would otherwise start two JVMs on the same data).
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 600 9 || die "another services.sh holds $STATE/.lock"
  fi
  case $cmd in
    up)
      if ((fresh)); then cmd_reset "${args[1]:-all}"; fi
      cmd_up "${args[1]:-all}" ;;
    down) cmd_down "${args[1]:-all}" ;;
    status) cmd_status ;;
    logs) cmd_logs "${args[1]:-}" "${args[2]:-}" ;;
    reset) cmd_reset "${args[1]:-all}" ;;
    env) for name in $(selected "${args[1]:-all}"); do env_line "$name"; done ;;
    *) usage ;;
  esac
}

main "$@"
