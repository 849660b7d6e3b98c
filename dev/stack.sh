#!/usr/bin/env bash
# The local stack: Docker engine, Apache Kafka (KRaft) on 127.0.0.1:9092,
# PostgreSQL on 127.0.0.1:5432 and, on request, one worker on 127.0.0.1:6066 and the
# Judge0/Piston-compatible gateway on 127.0.0.1:2358.
#
#   dev/stack.sh up | down | status
#   dev/stack.sh up-docker | up-kafka | up-postgres | up-worker | up-gateway
#   dev/stack.sh down-docker | down-kafka | down-postgres | down-worker | down-gateway
#   dev/stack.sh up-kafka-secure | down-kafka-secure | up-postgres-tls
#
# Idempotent: `up` starts only what does not answer; `down` stops only what this
# script started (a Docker engine somebody else started is left alone).
# Everything it keeps lives under .state/ (gitignored). See dev/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.state"
LOGS="$STATE/logs"

DOCKER_WAIT_S=60
DOCKER_PIDFILE="$STATE/docker/dockerd.pid"

KAFKA_HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_WAIT_S=90
KAFKA_STOP_WAIT_S=60
KAFKA_POM="$ROOT/dev/kafka/pom.xml"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIB="$KAFKA_DIR/lib"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONFIG="$KAFKA_DIR/server.properties"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
KAFKA_HEAP_OPTS=(-Xms256m -Xmx512m)

# The secure broker (up-kafka-secure): TLS and SASL listeners, its own state and ports.
KSEC_DIR="$STATE/kafka-secure"
KSEC_TLS="$KSEC_DIR/tls"
KSEC_DATA="$KSEC_DIR/data"
KSEC_CONFIG="$KSEC_DIR/server.properties"
KSEC_PIDFILE="$KSEC_DIR/kafka.pid"
KSEC_SASL_SSL_PORT=9094
KSEC_SASL_PLAINTEXT_PORT=9095
KSEC_SSL_PORT=9096
# Development credentials, loopback only; the *.env files beside them hand them to clients.
KSEC_SCRAM_USER=sw_scram
KSEC_SCRAM_PASSWORD=sw-scram-secret
KSEC_PLAIN_USER=sw_plain
KSEC_PLAIN_PASSWORD=sw-plain-secret
KSEC_BROKER_PASSWORD=sw-broker-secret
KSEC_KEYSTORE_PASSWORD=sw-keystore

PG_VERSION=15
PG_CLUSTER=main
PG_HOST=127.0.0.1
PG_PORT=5432
PG_WAIT_S=60
PG_DB=streamworker
PG_USER=streamworker
PG_PASSWORD=streamworker
PG_URL="postgresql://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
# What the stack's worker, gateway and CLI use. Loopback only, so no TLS: asyncpg would
# otherwise negotiate it ("prefer"), and encrypting every audit write to 127.0.0.1 cost
# the worker ~15 % of its CPU under load (docs/benchmarks.md).
PG_APP_URL="postgresql+asyncpg://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB?sslmode=disable"
# up-postgres-tls: our CA's certificate for the cluster (the CA stays under .state/).
PG_TLS_DIR="$STATE/postgres-tls"
PG_TLS_INSTALLED="/etc/postgresql/$PG_VERSION/$PG_CLUSTER/streamworker-tls"

WORKER_BIN="$ROOT/.venv/bin/streamworker"
WORKER_HEALTH_URL="http://127.0.0.1:6066/health"
WORKER_WAIT_S=60
WORKER_STOP_WAIT_S=30
WORKER_PIDFILE="$STATE/worker/worker.pid"

GATEWAY_URL="http://127.0.0.1:2358"
GATEWAY_WAIT_S=60
GATEWAY_PIDFILE="$STATE/gateway/gateway.pid"

# --- helpers ---------------------------------------------------------------

say() { printf 'stack: %s\n' "$*"; }
die() {
  printf 'stack: error: %s\n' "$*" >&2
  exit 1
}

# Run "$@" as root. Closes fd 9 (the stack lock): a daemon started through it,
# like postgres under pg_ctlcluster, would otherwise hold the lock forever.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@" 9>&-
  elif command -v sudo >/dev/null; then
    sudo "$@" 9>&-
  else
    die "need root (or sudo) for: $*"
  fi
}

# Install Debian packages; refresh the package lists once if the first try fails.
apt_install() {
  say "apt: installing $*"
  local log="$LOGS/apt.log"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$log" 2>&1; then
    as_root apt-get update -q >>"$log" 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$log" 2>&1 ||
      die "apt-get install $* failed; see $log"
  fi
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# The pid in $1 if that process is alive and its command line contains $2.
live_pid() {
  local pidfile=$1 pattern=$2 pid cmdline
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$pattern"* ]] || return 1
  printf '%s\n' "$pid"
}

# Start "$@" detached in its own session, logging to $2, pid to $1 (written by
# the process itself, so it is right whether or not setsid forks). The child
# must not inherit fd 9, the stack lock, or the lock would outlive this script.
spawn() {
  local pidfile=$1 log=$2
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$log")"
  printf '\n=== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
  # shellcheck disable=SC2016  # $$ and $@ are expanded by the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null 9>&- &
  local i
  for i in $(seq 50); do
    [[ -s $pidfile ]] && return 0
    sleep 0.1
  done
  die "could not start $1 (no pid file); see $log"
}

# Send SIGTERM, wait up to $3 s, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2 wait_s=$3 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < wait_s * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "$name: still running after ${wait_s}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
}

tail_log() {
  if [[ -f $1 ]]; then
    tail -n "${2:-20}" "$1" | sed 's/^/    | /' >&2
  fi
}

# --- Docker ----------------------------------------------------------------

docker_answers() { command -v docker >/dev/null && timeout 15 docker info >/dev/null 2>&1; }

up_docker() {
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  if docker_answers; then
    say "docker: up (engine $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    return 0
  fi
  if [[ -n ${DOCKER_HOST:-} && $DOCKER_HOST != unix:///var/run/docker.sock ]]; then
    die "docker: DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local engine"
  fi
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker >/dev/null || apt_install docker.io
  if ! live_pid "$DOCKER_PIDFILE" dockerd >/dev/null; then
    if pgrep -x dockerd >/dev/null; then
      say "docker: a dockerd is running but does not answer yet; waiting for it"
    else
      [[ $EUID -eq 0 ]] || die "docker: starting dockerd needs root"
      say "docker: starting dockerd (log: ${LOGS#"$ROOT"/}/dockerd.log)"
      spawn "$DOCKER_PIDFILE" "$LOGS/dockerd.log" dockerd
    fi
  fi
  local deadline=$((SECONDS + DOCKER_WAIT_S))
  until docker_answers; do
    if ((SECONDS >= deadline)); then
      tail_log "$LOGS/dockerd.log"
      die "docker: engine did not answer within ${DOCKER_WAIT_S}s; see $LOGS/dockerd.log"
    fi
    sleep 1
  done
  say "docker: up (engine $(docker version --format '{{.Server.Version}}'))"
}

down_docker() {
  local pid
  if pid=$(live_pid "$DOCKER_PIDFILE" dockerd); then
    say "docker: stopping dockerd (pid $pid)"
    stop_pid "$pid" docker 60
    rm -f "$DOCKER_PIDFILE"
  elif docker_answers; then
    say "docker: engine not started by stack.sh; leaving it running"
  else
    say "docker: not running"
  fi
}

status_docker() {
  if docker_answers; then
    local who=external
    live_pid "$DOCKER_PIDFILE" dockerd >/dev/null && who=stack.sh
    say "docker: up (engine $(docker version --format '{{.Server.Version}}'), started by $who)"
  else
    say "docker: down"
    return 1
  fi
}

# --- Kafka -----------------------------------------------------------------

ensure_java() {
  local major
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  major=$(java -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')
  [[ ${major:-0} -ge 17 ]] || die "kafka: needs Java 17 or newer, found ${major:-none}"
}

# Copy the jars that dev/kafka/pom.xml resolves into .state/kafka/lib, once per pom.
kafka_jars() {
  local stamp="$KAFKA_LIB/.pom.sha256" want
  want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  [[ -f $stamp && $(<"$stamp") == "$want" ]] && return 0
  command -v mvn >/dev/null || apt_install maven
  say "kafka: resolving jars with Maven (log: ${LOGS#"$ROOT"/}/maven.log)"
  local tmp="$KAFKA_DIR/lib.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$LOGS/maven.log" 2>&1; then
    tail_log "$LOGS/maven.log"
    die "kafka: Maven could not resolve the jars; see $LOGS/maven.log"
  fi
  rm -rf "$KAFKA_LIB"
  mv "$tmp" "$KAFKA_LIB"
  printf '%s\n' "$want" >"$stamp"
}

# Run a Kafka class from the cached jars (tools log to their own directory).
kafka_java() {
  java -Xmx256m -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS/kafka-tools" \
    -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB/*" "$@"
}

kafka_render_config() {
  mkdir -p "$KAFKA_DATA"
  sed "s|^log\.dirs=.*|log.dirs=$KAFKA_DATA|" "$ROOT/dev/kafka/server.properties" >"$KAFKA_CONFIG.tmp"
  mv "$KAFKA_CONFIG.tmp" "$KAFKA_CONFIG"
}

# Format the KRaft storage once; the cluster id is kept in .state/kafka/cluster-id.
kafka_format() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local id_file="$KAFKA_DIR/cluster-id"
  if [[ ! -s $id_file ]]; then
    kafka_java kafka.tools.StorageTool random-uuid >"$id_file.tmp" 2>>"$LOGS/kafka-tools.log"
    mv "$id_file.tmp" "$id_file"
  fi
  say "kafka: formatting storage (cluster id $(<"$id_file"))"
  kafka_java kafka.tools.StorageTool format --ignore-formatted \
    -t "$(<"$id_file")" -c "$KAFKA_CONFIG" >>"$LOGS/kafka-tools.log" 2>&1 ||
    die "kafka: formatting the storage failed; see $LOGS/kafka-tools.log"
}

# The broker answers a metadata request (listing topics).
kafka_answers() {
  port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
  timeout 30 java -Xmx128m -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS/kafka-tools" \
    -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" --list >/dev/null 2>>"$LOGS/kafka-tools.log"
}

# Start a broker from this checkout's jars: $1 its name (logs under $LOGS/$1), $2 its
# pid file, $3 its server.properties.
kafka_spawn() {
  local name=$1 pidfile=$2 config=$3
  say "$name: starting broker (log: ${LOGS#"$ROOT"/}/$name/server.log)"
  spawn "$pidfile" "$LOGS/$name.out" java "${KAFKA_HEAP_OPTS[@]}" \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS/$name" \
    -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$config"
}

# Wait until the check function $3 succeeds; die with the broker's log when the broker
# exits or $4 (what was awaited) does not come within KAFKA_WAIT_S.
kafka_wait() {
  local name=$1 pidfile=$2 check=$3 what=$4
  local deadline=$((SECONDS + KAFKA_WAIT_S))
  until "$check"; do
    if ! live_pid "$pidfile" kafka.Kafka >/dev/null; then
      tail_log "$LOGS/$name.out"
      tail_log "$LOGS/$name/server.log"
      die "$name: the broker exited; see $LOGS/$name/server.log"
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$LOGS/$name/server.log"
      die "$name: no $what within ${KAFKA_WAIT_S}s"
    fi
    sleep 0.5
  done
}

up_kafka() {
  mkdir -p "$KAFKA_DIR" "$LOGS"
  local pid
  if pid=$(live_pid "$KAFKA_PIDFILE" kafka.Kafka) && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    say "kafka: up (pid $pid, $KAFKA_HOST:$KAFKA_PORT)"
    return 0
  fi
  ensure_java
  # Jars are (re)resolved only while none of our brokers runs from them.
  [[ -n ${pid:-} ]] || kafka_jars
  if [[ -z ${pid:-} ]] && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    kafka_answers || die "kafka: $KAFKA_HOST:$KAFKA_PORT is taken by something that is not Kafka"
    say "kafka: up ($KAFKA_HOST:$KAFKA_PORT, not started by stack.sh)"
    return 0
  fi
  if [[ -z ${pid:-} ]]; then
    kafka_render_config
    kafka_format
    kafka_spawn kafka "$KAFKA_PIDFILE" "$KAFKA_CONFIG"
  fi
  kafka_wait kafka "$KAFKA_PIDFILE" kafka_answers "metadata answer on $KAFKA_HOST:$KAFKA_PORT"
  say "kafka: up (pid $(<"$KAFKA_PIDFILE"), $KAFKA_HOST:$KAFKA_PORT)"
}

down_kafka() {
  local pid
  if pid=$(live_pid "$KAFKA_PIDFILE" kafka.Kafka); then
    say "kafka: stopping (pid $pid)"
    stop_pid "$pid" kafka "$KAFKA_STOP_WAIT_S"
    rm -f "$KAFKA_PIDFILE"
    say "kafka: stopped"
  elif port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    say "kafka: $KAFKA_HOST:$KAFKA_PORT not started by stack.sh; leaving it running"
  else
    rm -f "$KAFKA_PIDFILE"
    say "kafka: not running"
  fi
}

status_kafka() {
  local pid
  if pid=$(live_pid "$KAFKA_PIDFILE" kafka.Kafka) && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    say "kafka: up (pid $pid, $KAFKA_HOST:$KAFKA_PORT)"
  elif port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    say "kafka: $KAFKA_HOST:$KAFKA_PORT open, not started by stack.sh"
  else
    say "kafka: down"
    return 1
  fi
}

# --- Kafka, secure listeners ---------------------------------------------

# The CA, the broker's certificate (PKCS12 for Kafka) and a client certificate for the
# SSL listener's mutual TLS, made once with dev/tls.sh and again when they near expiry.
kafka_secure_tls() {
  if [[ -f $KSEC_TLS/server.p12 ]] &&
    openssl x509 -checkend 86400 -noout -in "$KSEC_TLS/server-cert.pem" >/dev/null 2>&1; then
    return 0
  fi
  say "kafka-secure: making certificates in ${KSEC_TLS#"$ROOT"/}"
  rm -rf "$KSEC_TLS"
  TLS_NAME=kafka bash "$ROOT/dev/tls.sh" "$KSEC_TLS" >>"$LOGS/kafka-secure-tools.log" 2>&1 ||
    die "kafka-secure: dev/tls.sh failed; see $LOGS/kafka-secure-tools.log"
  openssl pkcs12 -export -in "$KSEC_TLS/server-cert.pem" -inkey "$KSEC_TLS/server-key.pem" \
    -certfile "$KSEC_TLS/ca.pem" -name kafka -passout "pass:$KSEC_KEYSTORE_PASSWORD" \
    -out "$KSEC_TLS/server.p12" 2>>"$LOGS/kafka-secure-tools.log" ||
    die "kafka-secure: could not write the PKCS12 key store"
  # New certificates, new broker: a running one keeps serving the old ones.
  rm -rf "$KSEC_DATA"
}

# One env file per listener: `set -a; . .state/kafka-secure/sasl-ssl.env` points a
# shell's streamworker at it (the tests read them too).
kafka_secure_env_files() {
  local common="STREAMWORKER_KAFKA_SSL_CAFILE=$KSEC_TLS/ca.pem"
  printf '%s\n' "STREAMWORKER_KAFKA_BOOTSTRAP=127.0.0.1:$KSEC_SASL_SSL_PORT" \
    STREAMWORKER_KAFKA_SECURITY_PROTOCOL=SASL_SSL STREAMWORKER_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 \
    "STREAMWORKER_KAFKA_SASL_USERNAME=$KSEC_SCRAM_USER" \
    "STREAMWORKER_KAFKA_SASL_PASSWORD=$KSEC_SCRAM_PASSWORD" "$common" >"$KSEC_DIR/sasl-ssl.env"
  printf '%s\n' "STREAMWORKER_KAFKA_BOOTSTRAP=127.0.0.1:$KSEC_SASL_PLAINTEXT_PORT" \
    STREAMWORKER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT STREAMWORKER_KAFKA_SASL_MECHANISM=PLAIN \
    "STREAMWORKER_KAFKA_SASL_USERNAME=$KSEC_PLAIN_USER" \
    "STREAMWORKER_KAFKA_SASL_PASSWORD=$KSEC_PLAIN_PASSWORD" >"$KSEC_DIR/sasl-plaintext.env"
  printf '%s\n' "STREAMWORKER_KAFKA_BOOTSTRAP=127.0.0.1:$KSEC_SSL_PORT" \
    STREAMWORKER_KAFKA_SECURITY_PROTOCOL=SSL "$common" \
    "STREAMWORKER_KAFKA_SSL_CERTFILE=$KSEC_TLS/client/cert.pem" \
    "STREAMWORKER_KAFKA_SSL_KEYFILE=$KSEC_TLS/client/key.pem" >"$KSEC_DIR/ssl.env"
  # The Java tools' view of the SASL_SSL listener, for the readiness probe.
  printf '%s\n' security.protocol=SASL_SSL sasl.mechanism=SCRAM-SHA-512 \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$KSEC_SCRAM_USER\" password=\"$KSEC_SCRAM_PASSWORD\";" \
    ssl.truststore.type=PEM "ssl.truststore.location=$KSEC_TLS/ca.pem" >"$KSEC_DIR/probe.properties"
}

kafka_secure_render_config() {
  mkdir -p "$KSEC_DATA"
  sed -e "s|@TLS_DIR@|$KSEC_TLS|g" -e "s|@DATA_DIR@|$KSEC_DATA|g" \
    -e "s|@PLAIN_USER@|$KSEC_PLAIN_USER|g" -e "s|@PLAIN_PASSWORD@|$KSEC_PLAIN_PASSWORD|g" \
    -e "s|@BROKER_PASSWORD@|$KSEC_BROKER_PASSWORD|g" \
    -e "s|@KEYSTORE_PASSWORD@|$KSEC_KEYSTORE_PASSWORD|g" \
    "$ROOT/dev/kafka/server-secure.properties" >"$KSEC_CONFIG.tmp"
  mv "$KSEC_CONFIG.tmp" "$KSEC_CONFIG"
}

# Format once, with the SCRAM user's credentials (both hashes) in the metadata log.
kafka_secure_format() {
  [[ -f $KSEC_DATA/meta.properties ]] && return 0
  local id
  id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka-secure-tools.log")
  say "kafka-secure: formatting storage (cluster id $id, SCRAM user $KSEC_SCRAM_USER)"
  kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$id" -c "$KSEC_CONFIG" \
    --add-scram "SCRAM-SHA-512=[name=$KSEC_SCRAM_USER,password=$KSEC_SCRAM_PASSWORD]" \
    --add-scram "SCRAM-SHA-256=[name=$KSEC_SCRAM_USER,password=$KSEC_SCRAM_PASSWORD]" \
    >>"$LOGS/kafka-secure-tools.log" 2>&1 ||
    die "kafka-secure: formatting the storage failed; see $LOGS/kafka-secure-tools.log"
}

# A metadata answer over SASL_SSL with SCRAM-SHA-512, trusting only our CA.
kafka_secure_answers() {
  port_open "$KAFKA_HOST" "$KSEC_SASL_SSL_PORT" || return 1
  timeout 30 java -Xmx128m -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS/kafka-tools" \
    -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$KAFKA_HOST:$KSEC_SASL_SSL_PORT" \
    --command-config "$KSEC_DIR/probe.properties" --list >/dev/null 2>>"$LOGS/kafka-secure-tools.log"
}

up_kafka_secure() {
  mkdir -p "$KSEC_DIR" "$LOGS"
  local pid port
  if pid=$(live_pid "$KSEC_PIDFILE" kafka.Kafka) && kafka_secure_answers; then
    say "kafka-secure: up (pid $pid, SASL_SSL :$KSEC_SASL_SSL_PORT, SASL_PLAINTEXT :$KSEC_SASL_PLAINTEXT_PORT, SSL :$KSEC_SSL_PORT)"
    return 0
  fi
  ensure_java
  command -v openssl >/dev/null || apt_install openssl
  if [[ -z ${pid:-} ]]; then
    for port in "$KSEC_SASL_SSL_PORT" "$KSEC_SASL_PLAINTEXT_PORT" "$KSEC_SSL_PORT" 9097; do
      ! port_open "$KAFKA_HOST" "$port" ||
        die "kafka-secure: $KAFKA_HOST:$port is taken (another checkout's secure broker? stop it with its dev/stack.sh down-kafka-secure)"
    done
    # Jars are (re)resolved only while neither of this checkout's brokers runs from them.
    live_pid "$KAFKA_PIDFILE" kafka.Kafka >/dev/null || kafka_jars
    kafka_secure_tls
    kafka_secure_env_files
    kafka_secure_render_config
    kafka_secure_format
    kafka_spawn kafka-secure "$KSEC_PIDFILE" "$KSEC_CONFIG"
  fi
  kafka_wait kafka-secure "$KSEC_PIDFILE" kafka_secure_answers \
    "SASL_SSL metadata answer on :$KSEC_SASL_SSL_PORT"
  say "kafka-secure: up (pid $(<"$KSEC_PIDFILE"), SASL_SSL :$KSEC_SASL_SSL_PORT, SASL_PLAINTEXT :$KSEC_SASL_PLAINTEXT_PORT, SSL :$KSEC_SSL_PORT; clients: ${KSEC_DIR#"$ROOT"/}/*.env)"
}

down_kafka_secure() {
  local pid
  if pid=$(live_pid "$KSEC_PIDFILE" kafka.Kafka); then
    say "kafka-secure: stopping (pid $pid)"
    stop_pid "$pid" kafka-secure "$KAFKA_STOP_WAIT_S"
    rm -f "$KSEC_PIDFILE"
    say "kafka-secure: stopped"
  else
    rm -f "$KSEC_PIDFILE"
    say "kafka-secure: not running"
  fi
}

# --- PostgreSQL ------------------------------------------------------------

pg_as_postgres() { (cd / && as_root runuser -u postgres -- "$@"); }

pg_cluster_running() { as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; }

pg_app_answers() {
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 psql -X -q -t -A -h "$PG_HOST" -p "$PG_PORT" \
    -U "$PG_USER" -d "$PG_DB" -c 'SELECT 1' >/dev/null 2>&1
}

# Loopback only, our port, password auth on 127.0.0.1, through a conf.d drop-in
# (Debian's postgresql.conf includes conf.d/). Echoes "changed" when it edited a file.
pg_configure() {
  local conf="/etc/postgresql/$PG_VERSION/$PG_CLUSTER" changed="" want
  want=$(printf "# Written by streamworker's dev/stack.sh.\nlisten_addresses = '%s'\nport = %s\n" \
    "$PG_HOST" "$PG_PORT")
  if [[ $(as_root cat "$conf/conf.d/streamworker.conf" 2>/dev/null) != "$want" ]]; then
    printf '%s\n' "$want" | as_root tee "$conf/conf.d/streamworker.conf" >/dev/null
    changed=1
  fi
  # pg_ctlcluster and pg_lsclusters read the port from postgresql.conf itself.
  if [[ $(as_root pg_conftool -s "$PG_VERSION" "$PG_CLUSTER" show port 2>/dev/null) != "$PG_PORT" ]]; then
    as_root pg_conftool "$PG_VERSION" "$PG_CLUSTER" set port "$PG_PORT" >/dev/null
    changed=1
  fi
  if ! as_root grep -Eq "^host[[:space:]]+(all|$PG_DB)[[:space:]]+(all|$PG_USER)[[:space:]]+127\.0\.0\.1/32[[:space:]]+(scram-sha-256|md5)" "$conf/pg_hba.conf"; then
    printf 'host\t%s\t%s\t127.0.0.1/32\tscram-sha-256\n' "$PG_DB" "$PG_USER" |
      as_root tee -a "$conf/pg_hba.conf" >/dev/null
    changed=1
  fi
  [[ -z $changed ]] || echo changed
}

pg_ensure_role_and_db() {
  pg_as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres >/dev/null <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN;
  END IF;
END
\$\$;
SET password_encryption = 'scram-sha-256';
ALTER ROLE $PG_USER WITH LOGIN PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
ALTER DATABASE $PG_DB OWNER TO $PG_USER;
SQL
}

up_postgres() {
  mkdir -p "$LOGS"
  if [[ ! -x /usr/lib/postgresql/$PG_VERSION/bin/postgres ]] || ! command -v pg_ctlcluster >/dev/null; then
    apt_install "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION"
  fi
  if [[ ! -f /etc/postgresql/$PG_VERSION/$PG_CLUSTER/postgresql.conf ]]; then
    say "postgres: creating cluster $PG_VERSION/$PG_CLUSTER"
    as_root pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" \
      -- --auth-local=peer --auth-host=scram-sha-256 >>"$LOGS/postgres-setup.log" 2>&1 ||
      die "postgres: pg_createcluster failed; see $LOGS/postgres-setup.log"
  fi
  local changed
  changed=$(pg_configure)
  if pg_cluster_running; then
    if [[ -n $changed ]]; then
      say "postgres: configuration changed, restarting cluster $PG_VERSION/$PG_CLUSTER"
      as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart -m fast
    fi
  else
    if port_open "$PG_HOST" "$PG_PORT"; then
      pg_app_answers && {
        say "postgres: up ($PG_HOST:$PG_PORT, not cluster $PG_VERSION/$PG_CLUSTER; database $PG_DB answers)"
        return 0
      }
      die "postgres: $PG_HOST:$PG_PORT is taken by another process"
    fi
    say "postgres: starting cluster $PG_VERSION/$PG_CLUSTER"
    as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start ||
      die "postgres: pg_ctlcluster start failed; see /var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"
  fi
  local deadline=$((SECONDS + PG_WAIT_S))
  until pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; do
    if ((SECONDS >= deadline)); then
      tail_log "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"
      die "postgres: not ready on $PG_HOST:$PG_PORT within ${PG_WAIT_S}s"
    fi
    sleep 0.5
  done
  pg_ensure_role_and_db || die "postgres: could not create role/database $PG_USER/$PG_DB"
  pg_app_answers || die "postgres: cannot log in as $PG_URL"
  say "postgres: up ($PG_HOST:$PG_PORT, database $PG_DB)"
}

down_postgres() {
  if command -v pg_ctlcluster >/dev/null && pg_cluster_running; then
    say "postgres: stopping cluster $PG_VERSION/$PG_CLUSTER"
    as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast
    say "postgres: stopped"
  else
    say "postgres: cluster $PG_VERSION/$PG_CLUSTER not running"
  fi
}

status_postgres() {
  if pg_app_answers; then
    say "postgres: up ($PG_HOST:$PG_PORT, database $PG_DB)"
  elif port_open "$PG_HOST" "$PG_PORT"; then
    say "postgres: $PG_HOST:$PG_PORT open, but $PG_USER cannot log in to $PG_DB (run: dev/stack.sh up-postgres)"
    return 1
  else
    say "postgres: down"
    return 1
  fi
}

# Serve a certificate from our CA (SANs IP:127.0.0.1, DNS:localhost) so clients can ask
# for sslmode=verify-full. Applied with ALTER SYSTEM and a reload: open connections stay.
up_postgres_tls() {
  local ca="$PG_TLS_DIR/ca.pem" current changed=""
  command -v openssl >/dev/null || apt_install openssl
  pg_app_answers || die "postgres-tls: $PG_URL does not answer; run dev/stack.sh up-postgres first"
  if ! openssl x509 -checkend 86400 -noout -in "$PG_TLS_DIR/server-cert.pem" >/dev/null 2>&1; then
    say "postgres-tls: making certificates in ${PG_TLS_DIR#"$ROOT"/}"
    rm -rf "$PG_TLS_DIR"
    TLS_NAME=postgres bash "$ROOT/dev/tls.sh" "$PG_TLS_DIR" >>"$LOGS/postgres-setup.log" 2>&1 ||
      die "postgres-tls: dev/tls.sh failed; see $LOGS/postgres-setup.log"
  fi
  if ! as_root cmp -s "$PG_TLS_DIR/server-cert.pem" "$PG_TLS_INSTALLED/server-cert.pem"; then
    as_root install -d -o postgres -g postgres -m 0700 "$PG_TLS_INSTALLED"
    as_root install -o postgres -g postgres -m 0600 "$PG_TLS_DIR/server-key.pem" "$PG_TLS_INSTALLED/"
    as_root install -o postgres -g postgres -m 0644 "$PG_TLS_DIR/server-cert.pem" "$PG_TLS_INSTALLED/"
    changed=1
  fi
  current=$(pg_as_postgres psql -X -q -t -A -p "$PG_PORT" -d postgres \
    -c "SELECT current_setting('ssl') || ' ' || current_setting('ssl_cert_file')")
  if [[ -n $changed || $current != "on $PG_TLS_INSTALLED/server-cert.pem" ]]; then
    say "postgres-tls: serving the certificate of ${ca#"$ROOT"/} (ALTER SYSTEM, reload)"
    pg_as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres >/dev/null <<SQL ||
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$PG_TLS_INSTALLED/server-cert.pem';
ALTER SYSTEM SET ssl_key_file = '$PG_TLS_INSTALLED/server-key.pem';
SELECT pg_reload_conf();
SQL
      die "postgres-tls: could not change the TLS settings"
  fi
  local deadline=$((SECONDS + 15))
  until PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 psql -X -q -t -A \
    "host=$PG_HOST port=$PG_PORT dbname=$PG_DB user=$PG_USER sslmode=verify-full sslrootcert=$ca" \
    -c 'SELECT 1' >/dev/null 2>>"$LOGS/postgres-setup.log"; do
    if ((SECONDS >= deadline)); then
      tail_log "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"
      die "postgres-tls: no verify-full login with $ca within 15s"
    fi
    sleep 0.5
  done
  say "postgres-tls: up ($PG_HOST:$PG_PORT verifies with sslrootcert=${ca#"$ROOT"/})"
}

# --- worker ----------------------------------------------------------------

# Any HTTP answer counts: 503 means the worker is up but a dependency is not.
worker_http_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$WORKER_HEALTH_URL" 2>/dev/null || true
}

worker_answers() {
  local code
  code=$(worker_http_code)
  [[ -n $code && $code != 000 ]]
}

up_worker() {
  local pid
  command -v curl >/dev/null || apt_install curl
  if ! pid=$(live_pid "$WORKER_PIDFILE" "streamworker worker"); then
    pid=""
    if worker_answers; then
      say "worker: $WORKER_HEALTH_URL already answers (not started by stack.sh)"
      return 0
    fi
    [[ -x $WORKER_BIN ]] || die "worker: $WORKER_BIN not found; install the package into .venv first"
    (
      cd "$ROOT"
      # The stack's worker uses the stack's database unless told otherwise.
      export STREAMWORKER_DATABASE_URL="${STREAMWORKER_DATABASE_URL:-$PG_APP_URL}"
      say "worker: applying database migrations"
      if ! "$WORKER_BIN" db upgrade >>"$LOGS/worker.log" 2>&1 </dev/null; then
        tail_log "$LOGS/worker.log"
        die "worker: 'streamworker db upgrade' failed; see $LOGS/worker.log"
      fi
      say "worker: starting (log: ${LOGS#"$ROOT"/}/worker.log)"
      spawn "$WORKER_PIDFILE" "$LOGS/worker.log" "$WORKER_BIN" worker
    )
  fi
  local deadline=$((SECONDS + WORKER_WAIT_S))
  until worker_answers; do
    if ! live_pid "$WORKER_PIDFILE" "streamworker worker" >/dev/null; then
      tail_log "$LOGS/worker.log" 30
      die "worker: exited before $WORKER_HEALTH_URL answered; see $LOGS/worker.log"
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$LOGS/worker.log" 30
      die "worker: $WORKER_HEALTH_URL did not answer within ${WORKER_WAIT_S}s; see $LOGS/worker.log"
    fi
    sleep 1
  done
  say "worker: up (pid $(<"$WORKER_PIDFILE"), $WORKER_HEALTH_URL -> HTTP $(worker_http_code))"
}

down_worker() {
  local pid
  if pid=$(live_pid "$WORKER_PIDFILE" "streamworker worker"); then
    say "worker: stopping (pid $pid)"
    stop_pid "$pid" worker "$WORKER_STOP_WAIT_S"
    rm -f "$WORKER_PIDFILE"
    say "worker: stopped"
  else
    rm -f "$WORKER_PIDFILE"
    say "worker: not running"
  fi
}

status_worker() {
  local pid
  if pid=$(live_pid "$WORKER_PIDFILE" "streamworker worker"); then
    say "worker: running (pid $pid, $WORKER_HEALTH_URL -> HTTP $(worker_http_code))"
  elif worker_answers; then
    say "worker: $WORKER_HEALTH_URL answers (HTTP $(worker_http_code)), not started by stack.sh"
  else
    say "worker: down"
    return 1
  fi
}

# --- gateway (Judge0/Piston-compatible HTTP, 127.0.0.1:2358) -------------------

gateway_http_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$GATEWAY_URL/health" 2>/dev/null || true
}

up_gateway() {
  local code
  command -v curl >/dev/null || apt_install curl
  if ! live_pid "$GATEWAY_PIDFILE" "streamworker gateway" >/dev/null; then
    code=$(gateway_http_code)
    if [[ -n $code && $code != 000 ]]; then
      say "gateway: $GATEWAY_URL already answers (not started by stack.sh)"
      return 0
    fi
    [[ -x $WORKER_BIN ]] || die "gateway: $WORKER_BIN not found; install the package into .venv first"
    (
      cd "$ROOT"
      export STREAMWORKER_DATABASE_URL="${STREAMWORKER_DATABASE_URL:-$PG_APP_URL}"
      say "gateway: starting (log: ${LOGS#"$ROOT"/}/gateway.log)"
      spawn "$GATEWAY_PIDFILE" "$LOGS/gateway.log" "$WORKER_BIN" gateway
    )
  fi
  local deadline=$((SECONDS + GATEWAY_WAIT_S))
  until [[ $(gateway_http_code) == 200 ]]; do
    if ! live_pid "$GATEWAY_PIDFILE" "streamworker gateway" >/dev/null; then
      tail_log "$LOGS/gateway.log" 30
      die "gateway: exited before $GATEWAY_URL/health answered; see $LOGS/gateway.log"
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$LOGS/gateway.log" 30
      die "gateway: $GATEWAY_URL/health did not answer within ${GATEWAY_WAIT_S}s"
    fi
    sleep 0.5
  done
  say "gateway: up (pid $(<"$GATEWAY_PIDFILE"), $GATEWAY_URL, docs at $GATEWAY_URL/docs)"
}

down_gateway() {
  local pid
  if pid=$(live_pid "$GATEWAY_PIDFILE" "streamworker gateway"); then
    say "gateway: stopping (pid $pid)"
    stop_pid "$pid" gateway "$WORKER_STOP_WAIT_S"
    say "gateway: stopped"
  else
    say "gateway: not running"
  fi
  rm -f "$GATEWAY_PIDFILE"
}

status_gateway() {
  local pid code
  code=$(gateway_http_code)
  if pid=$(live_pid "$GATEWAY_PIDFILE" "streamworker gateway"); then
    say "gateway: running (pid $pid, $GATEWAY_URL/health -> HTTP $code)"
  elif [[ -n $code && $code != 000 ]]; then
    say "gateway: $GATEWAY_URL answers (HTTP $code), not started by stack.sh"
  else
    say "gateway: down"
  fi
}

# --- the settings file -----------------------------------------------------

# The stack's settings for the CLI (streamworker/settings_file.py reads it when no
# environment variable says otherwise): `streamworker history` etc. need no settings.
write_settings_file() {
  local file="$STATE/stack.env" tmp
  tmp=$(mktemp "$STATE/stack.env.XXXXXX")
  cat >"$tmp" <<EOF
# Written by dev/stack.sh up: the local stack, for the streamworker CLI.
# Flags > environment > this file > built-in defaults (docs/configuration.md).
STREAMWORKER_DATABASE_URL=$PG_APP_URL
STREAMWORKER_KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT
EOF
  chmod 600 "$tmp"
  mv -f "$tmp" "$file"
  say "settings: ${file#"$ROOT"/} (read by the streamworker CLI)"
}

# --- main ------------------------------------------------------------------

usage() {
  cat <<EOF
usage: dev/stack.sh COMMAND
  up            start Docker, PostgreSQL and Kafka (only what is not running)
  down          stop the worker, Kafka, PostgreSQL and a Docker engine started by this script
  status        show each service; exit 1 if Docker, Kafka or PostgreSQL is down
  up-docker | up-kafka | up-postgres | up-worker | up-gateway
  down-docker | down-kafka | down-postgres | down-worker | down-gateway
  up-kafka-secure | down-kafka-secure   a second broker with SASL_SSL, SASL_PLAINTEXT, SSL
  up-postgres-tls   give PostgreSQL a certificate of our CA (sslmode=verify-full)
EOF
}

main() {
  local cmd=${1:-}
  case $cmd in
    up | down | status | up-* | down-*) ;;
    -h | --help | help)
      usage
      return 0
      ;;
    *)
      usage >&2
      return 2
      ;;
  esac
  mkdir -p "$STATE" "$LOGS"
  # One stack.sh at a time: concurrent `up`s would race on pid files and ports.
  exec 9>"$STATE/stack.lock"
  flock -w 300 9 || die "another dev/stack.sh is still running (lock $STATE/stack.lock)"
  local t0=$SECONDS rc=0
  case $cmd in
    up)
      up_docker
      up_postgres
      up_kafka
      write_settings_file
      say "up in $((SECONDS - t0))s"
      ;;
    down)
      down_gateway
      down_worker
      down_kafka_secure
      down_kafka
      down_postgres
      down_docker
      ;;
    status)
      status_docker || rc=1
      status_kafka || rc=1
      status_postgres || rc=1
      status_worker || true
      status_gateway
      return "$rc"
      ;;
    up-docker) up_docker ;;
    up-kafka) up_kafka ;;
    up-postgres) up_postgres ;;
    up-worker) up_worker ;;
    up-gateway) up_gateway ;;
    down-gateway) down_gateway ;;
    down-docker) down_docker ;;
    down-kafka) down_kafka ;;
    down-postgres) down_postgres ;;
    down-worker) down_worker ;;
    up-kafka-secure) up_kafka_secure ;;
    down-kafka-secure) down_kafka_secure ;;
    up-postgres-tls) up_postgres_tls ;;
    *)
      usage >&2
      return 2
      ;;
  esac
}

main "$@"
