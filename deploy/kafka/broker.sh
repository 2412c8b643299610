#!/usr/bin/env bash
# Keel dev/test Apache Kafka broker: one KRaft node (broker + controller) on 127.0.0.1, or with
# KEEL_KAFKA_NODES=3 a cluster of three such nodes forming the controller quorum, run straight
# from the Maven Central jars (no Docker, no Kafka tarball).
#
#   deploy/kafka/broker.sh fetch      resolve the broker jars into the cache (once)
#   deploy/kafka/broker.sh start      fetch if needed, format storage once, start, wait until ready
#   deploy/kafka/broker.sh stop       SIGTERM, up to 30 s for a clean exit, then SIGKILL
#   deploy/kafka/broker.sh status     exit 0 and print the bootstrap address if running, else 1
#   deploy/kafka/broker.sh logs [-f]  tail (or follow) the broker log
#   deploy/kafka/broker.sh clean      stop and delete the data dir
#
# `start` and `status` print only the bootstrap address (127.0.0.1:PORT, a comma-separated list
# of every node's in cluster mode) on stdout, so
# `BOOTSTRAP=$(deploy/kafka/broker.sh start)` works; everything else goes to stderr.
# Environment: see usage() below and deploy/kafka/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"

KAFKA_VERSION="${KEEL_KAFKA_VERSION:-4.1.1}"
PORT="${KEEL_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KEEL_KAFKA_CONTROLLER_PORT:-9093}"
DATA_DIR="${KEEL_KAFKA_DATA_DIR:-${REPO_ROOT}/.run/kafka}"
# Cluster mode: NODES combined broker+controller nodes, a static KRaft voter set of all of
# them, replication factor min(NODES, 3) and min.insync.replicas one less (2 for 3 nodes), so
# one node can die without stopping acks=all producers.
NODES="${KEEL_KAFKA_NODES:-1}"
PORTS_LIST="${KEEL_KAFKA_PORTS:-}"
CONTROLLER_PORTS_LIST="${KEEL_KAFKA_CONTROLLER_PORTS:-}"
if [[ "${NODES}" == 1 ]]; then
  HEAP="${KEEL_KAFKA_HEAP:--Xms256m -Xmx768m}"
else
  # Three JVMs share a small machine: each gets a small heap.
  HEAP="${KEEL_KAFKA_HEAP:--Xms128m -Xmx384m}"
fi
# Start-up on a small (2-core) machine: the serial collector has no concurrent GC threads to
# compete with start-up, and C1-only JIT (TieredStopAtLevel=1) compiles far less; see README.
JVM_TUNING="${KEEL_KAFKA_JVM_OPTS--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
LOG_LEVEL="${KEEL_KAFKA_LOG_LEVEL:-INFO}"
START_TIMEOUT="${KEEL_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KEEL_KAFKA_STOP_TIMEOUT:-30}"
CACHE_DIR="${KEEL_CACHE_DIR:-${HOME}/.cache/keel}"
EXTERNAL_BOOTSTRAP="${KEEL_KAFKA_BOOTSTRAP:-}"
# sasl_ssl (default): TLS + SASL/SCRAM-SHA-512 and ACLs; plaintext: no security (benchmarks).
SECURITY="${KEEL_KAFKA_SECURITY:-sasl_ssl}"
CREDENTIALS_DIR="${KEEL_KAFKA_CREDENTIALS_DIR:-}"
MVN="${KEEL_MVN:-mvn}"
if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
  JAVA="${JAVA_HOME}/bin/java"
else
  JAVA="java"
fi

POM="${SCRIPT_DIR}/pom.xml"
TEMPLATE="${SCRIPT_DIR}/server.properties.tmpl"
SECURITY_TEMPLATE="${SCRIPT_DIR}/security.properties.tmpl"
SECURITY_TOOL="${SCRIPT_DIR}/KeelSecurity.java"
LOG4J_CONFIG="${SCRIPT_DIR}/log4j2.properties"
VERSION_DIR="${CACHE_DIR}/kafka/${KAFKA_VERSION}"
LIBS_DIR="${VERSION_DIR}/libs"
FETCH_MARKER="${VERSION_DIR}/fetch.ok"

BOOTSTRAP="127.0.0.1:${PORT}"
NODE_ID=1

log() { printf 'kafka: %s\n' "$*" >&2; }
die() { printf 'kafka: error: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
elapsed() { local start_ms="$1" end_ms; end_ms="$(now_ms)"; printf '%d.%01d' $(((end_ms - start_ms) / 1000)) $(((end_ms - start_ms) % 1000 / 100)); }

usage() {
  cat >&2 <<EOF
usage: ${0##*/} {fetch|start|stop|status|logs [-f]|clean}

Runs a single-node Apache Kafka ${KAFKA_VERSION} (KRaft, broker+controller) on 127.0.0.1,
or a cluster of KEEL_KAFKA_NODES such nodes.

Environment:
  KEEL_KAFKA_PORT             client port (default 9092)
  KEEL_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
  KEEL_KAFKA_DATA_DIR         config, storage, logs, pid (default <repo>/.run/kafka)
  KEEL_KAFKA_HEAP             JVM heap flags (default "-Xms256m -Xmx768m")
  KEEL_KAFKA_JVM_OPTS         GC/JIT flags (default "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
  KEEL_KAFKA_LOG_LEVEL        root log level of server.log (default INFO)
  KEEL_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
  KEEL_KAFKA_STOP_TIMEOUT     seconds to wait for a clean exit before SIGKILL (default 30)
  KEEL_KAFKA_VERSION          Kafka version to resolve (default 4.1.1)
  KEEL_CACHE_DIR              jar cache root (default ~/.cache/keel)
  KEEL_MVN                    Maven command used by fetch (default mvn)
  KEEL_KAFKA_SECURITY         sasl_ssl (default: TLS, SCRAM users, ACLs) or plaintext
  KEEL_KAFKA_CREDENTIALS_DIR  where clients find ca.pem and <principal>.password
                              (default <data dir>/credentials)
  KEEL_KAFKA_BOOTSTRAP        use this external cluster: start/stop do nothing
  KEEL_KAFKA_NODES            nodes (default 1); 3: a cluster, each node in <data dir>/node-N
                              (replication factor 3, min.insync.replicas 2)
  KEEL_KAFKA_PORTS            cluster: client ports "P1,P2,P3" (default PORT, PORT+1, ...)
  KEEL_KAFKA_CONTROLLER_PORTS cluster: controller ports (default the NODES ports after the
                              client ports)
  KEEL_KAFKA_NODE             start/stop/status only node N of the cluster (e.g. restart one)
EOF
}

validate_config() {
  [[ "${PORT}" =~ ^[0-9]+$ ]] || die "KEEL_KAFKA_PORT must be a number, got '${PORT}'"
  [[ "${CONTROLLER_PORT}" =~ ^[0-9]+$ ]] || die "KEEL_KAFKA_CONTROLLER_PORT must be a number, got '${CONTROLLER_PORT}'"
  [[ "${PORT}" != "${CONTROLLER_PORT}" ]] || die "KEEL_KAFKA_PORT and KEEL_KAFKA_CONTROLLER_PORT must differ"
  [[ "${START_TIMEOUT}" =~ ^[0-9]+$ ]] || die "KEEL_KAFKA_START_TIMEOUT must be a number of seconds"
  [[ "${STOP_TIMEOUT}" =~ ^[0-9]+$ ]] || die "KEEL_KAFKA_STOP_TIMEOUT must be a number of seconds"
  # The path ends up in a Java properties file, where a backslash is an escape character.
  [[ "${DATA_DIR}" != *\\* ]] || die "KEEL_KAFKA_DATA_DIR must not contain a backslash"
  [[ "${CREDENTIALS_DIR}" != *\\* ]] || die "KEEL_KAFKA_CREDENTIALS_DIR must not contain a backslash"
  [[ "${SECURITY}" == sasl_ssl || "${SECURITY}" == plaintext ]] ||
    die "KEEL_KAFKA_SECURITY must be sasl_ssl or plaintext, got '${SECURITY}'"
  [[ "${NODES}" =~ ^[1-9]$ ]] || die "KEEL_KAFKA_NODES must be a number from 1 to 9, got '${NODES}'"
  resolve_ports
}

# One client and one controller port per node (arrays CLIENT_PORTS, CTRL_PORTS), the bootstrap
# list of every node, the static voter set and the replication settings that follow the size.
resolve_ports() {
  local i
  CLIENT_PORTS=() CTRL_PORTS=()
  if [[ -n "${PORTS_LIST}" ]]; then IFS=, read -r -a CLIENT_PORTS <<<"${PORTS_LIST}"; fi
  if [[ -n "${CONTROLLER_PORTS_LIST}" ]]; then IFS=, read -r -a CTRL_PORTS <<<"${CONTROLLER_PORTS_LIST}"; fi
  if ((NODES == 1)); then
    CLIENT_PORTS=("${CLIENT_PORTS[0]:-${PORT}}")
    CTRL_PORTS=("${CTRL_PORTS[0]:-${CONTROLLER_PORT}}")
  else
    ((${#CLIENT_PORTS[@]})) || for ((i = 0; i < NODES; i++)); do CLIENT_PORTS+=($((PORT + i))); done
    ((${#CTRL_PORTS[@]})) || for ((i = 0; i < NODES; i++)); do CTRL_PORTS+=($((CLIENT_PORTS[NODES - 1] + 1 + i))); done
  fi
  ((${#CLIENT_PORTS[@]} == NODES && ${#CTRL_PORTS[@]} == NODES)) ||
    die "KEEL_KAFKA_PORTS and KEEL_KAFKA_CONTROLLER_PORTS must name ${NODES} ports each"
  local all=" ${CLIENT_PORTS[*]} ${CTRL_PORTS[*]} " port
  for port in "${CLIENT_PORTS[@]}" "${CTRL_PORTS[@]}"; do
    [[ "${port}" =~ ^[0-9]+$ ]] || die "ports must be numbers, got '${port}'"
    local rest="${all/ ${port} / }"
    [[ "${rest}" != *" ${port} "* ]] || die "port ${port} is named twice (client and controller ports must all differ)"
  done
  BOOTSTRAP="" VOTERS=""
  for ((i = 0; i < NODES; i++)); do
    BOOTSTRAP+="${BOOTSTRAP:+,}127.0.0.1:${CLIENT_PORTS[i]}"
    VOTERS+="${VOTERS:+,}$((i + 1))@127.0.0.1:${CTRL_PORTS[i]}"
  done
  REPLICATION=$((NODES < 3 ? NODES : 3))
  MIN_ISR=$((REPLICATION > 1 ? REPLICATION - 1 : 1))
  ONLY_NODE="${KEEL_KAFKA_NODE:-}"
  [[ -z "${ONLY_NODE}" || ("${ONLY_NODE}" =~ ^[1-9]$ && ONLY_NODE -le NODES) ]] ||
    die "KEEL_KAFKA_NODE must be a node number from 1 to ${NODES}, got '${ONLY_NODE}'"
  PORT="${CLIENT_PORTS[0]}" CONTROLLER_PORT="${CTRL_PORTS[0]}"
}

# The nodes a command acts on: all of them, or KEEL_KAFKA_NODE alone.
selected_nodes() {
  if [[ -n "${ONLY_NODE}" ]]; then echo "${ONLY_NODE}"; else seq 1 "${NODES}"; fi
}

# Points the per-node variables (ports, config, storage, logs, pid file) at node $1. A single
# broker keeps everything in the data dir itself (the layout before cluster mode).
select_node() {
  NODE_ID="$1"
  PORT="${CLIENT_PORTS[NODE_ID - 1]}"
  CONTROLLER_PORT="${CTRL_PORTS[NODE_ID - 1]}"
  local dir="${DATA_DIR}"
  ((NODES == 1)) || dir="${DATA_DIR}/node-${NODE_ID}"
  NODE_DIR="${dir}"
  PROPS="${dir}/server.properties"
  STORAGE_DIR="${dir}/kraft-logs"
  LOG_DIR="${dir}/logs"
  SERVER_LOG="${LOG_DIR}/server.log"
  STDOUT_LOG="${LOG_DIR}/stdout.log"
  PID_FILE="${dir}/broker.pid"
  SCRAM_MARKER="${dir}/scram-admin"
}

# Data-dir layout (all paths absolute once resolve_data_dir has run).
resolve_data_dir() {
  local created=0
  [[ -d "${DATA_DIR}" ]] || { mkdir -p "${DATA_DIR}"; created=1; }
  DATA_DIR="$(cd "${DATA_DIR}" && pwd)"
  PROPS="${DATA_DIR}/server.properties"
  STORAGE_DIR="${DATA_DIR}/kraft-logs"
  LOG_DIR="${DATA_DIR}/logs"
  SERVER_LOG="${LOG_DIR}/server.log"
  STDOUT_LOG="${LOG_DIR}/stdout.log"
  PID_FILE="${DATA_DIR}/broker.pid"
  CLUSTER_ID_FILE="${DATA_DIR}/cluster.id"
  OWNER_MARKER="${DATA_DIR}/.keel-kafka"
  TLS_DIR="${DATA_DIR}/tls"
  SCRAM_MARKER="${DATA_DIR}/scram-admin"
  APPLIED_MARKER="${DATA_DIR}/security.applied"
  CREDENTIALS_DIR="${CREDENTIALS_DIR:-${DATA_DIR}/credentials}"
  CA_FILE="${CREDENTIALS_DIR}/ca.pem"
  if ((created)); then : >"${OWNER_MARKER}"; fi
  select_node 1
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# kill -0 alone is not enough: a broker that dies during `start` is our child and stays a zombie.
alive() {
  local state
  state="$(ps -p "$1" -o stat= 2>/dev/null)" || return 1
  [[ -n "${state}" && "${state}" != Z* ]]
}

# ---------------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------------

fetch_fingerprint() {
  { printf 'kafka.version=%s\n' "${KAFKA_VERSION}"; cat "${POM}"; } | sha256sum | cut -d' ' -f1
}

fetch_complete() {
  [[ -f "${FETCH_MARKER}" && -f "${LIBS_DIR}/kafka_2.13-${KAFKA_VERSION}.jar" ]] &&
    [[ "$(cat "${FETCH_MARKER}")" == "$(fetch_fingerprint)" ]]
}

cmd_fetch() {
  local quiet="${1:-}"
  if fetch_complete; then
    [[ -n "${quiet}" ]] || log "jars for Kafka ${KAFKA_VERSION} already in ${LIBS_DIR}"
    return 0
  fi
  mkdir -p "${VERSION_DIR}"
  # Serialise concurrent fetches (e.g. `make run` and the tests starting two brokers at once).
  # The lock fd lives only in this subshell, so the broker JVM started later does not inherit it.
  (
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if fetch_complete; then
      [[ -n "${quiet}" ]] || log "jars for Kafka ${KAFKA_VERSION} already in ${LIBS_DIR}"
      exit 0
    fi
    fetch_locked
  ) 9>"${VERSION_DIR}/.fetch.lock"
}

fetch_locked() {
  command -v "${MVN}" >/dev/null 2>&1 || die "'${MVN}' (Maven) not found; it is needed once to fetch the Kafka jars"
  log "fetching Kafka ${KAFKA_VERSION} jars from Maven Central into ${LIBS_DIR} ..."
  local start_ms tmp mvn_log
  start_ms="$(now_ms)"
  rm -f "${FETCH_MARKER}"
  rm -rf "${VERSION_DIR}"/libs.tmp.* # left over by an interrupted fetch
  tmp="${VERSION_DIR}/libs.tmp.$$"
  mvn_log="${VERSION_DIR}/fetch.log"
  if ! "${MVN}" -B -q -Dstyle.color=never -f "${POM}" \
      "-Dkafka.version=${KAFKA_VERSION}" \
      dependency:copy-dependencies "-DoutputDirectory=${tmp}" -DincludeScope=runtime \
      >"${mvn_log}" 2>&1; then
    tail -n 40 "${mvn_log}" | sed $'s/\x1b\\[[0-9;]*m//g' >&2 || true
    rm -rf "${tmp}"
    die "Maven could not resolve Kafka ${KAFKA_VERSION} (full output: ${mvn_log})"
  fi
  [[ -f "${tmp}/kafka_2.13-${KAFKA_VERSION}.jar" ]] || { rm -rf "${tmp}"; die "kafka_2.13-${KAFKA_VERSION}.jar missing after the Maven run"; }
  rm -rf "${LIBS_DIR}"
  mv "${tmp}" "${LIBS_DIR}"
  # Written last: an interrupted fetch leaves no marker and is redone next time.
  fetch_fingerprint >"${FETCH_MARKER}"
  log "fetched $(find "${LIBS_DIR}" -name '*.jar' | wc -l | tr -d ' ') jars in $(elapsed "${start_ms}") s"
}

# ---------------------------------------------------------------------------------------------
# process helpers
# ---------------------------------------------------------------------------------------------

# Prints the pid from the pid file if that process is alive and is *our* broker
# (a kafka.Kafka JVM started with this data dir's server.properties), else nothing.
running_pid() {
  [[ -f "${PID_FILE}" ]] || return 0
  local pid args
  pid="$(tr -cd '0-9' <"${PID_FILE}")"
  [[ -n "${pid}" ]] || return 0
  alive "${pid}" || return 0
  args="$(ps -p "${pid}" -o args= 2>/dev/null || true)"
  if [[ "${args}" == *kafka.Kafka* && "${args}" == *"${PROPS}"* ]]; then
    printf '%s\n' "${pid}"
  fi
}

check_java() {
  command -v "${JAVA}" >/dev/null 2>&1 || die "java not found (Kafka ${KAFKA_VERSION} needs Java 17+); set JAVA_HOME or PATH"
  local line major
  line="$("${JAVA}" -version 2>&1 | head -n 1)"
  major="$(sed -E 's/.*version "([0-9]+)(\.[0-9]+)*.*/\1/' <<<"${line}")"
  if [[ "${major}" =~ ^[0-9]+$ ]] && ((major < 17)); then
    die "Kafka ${KAFKA_VERSION} needs Java 17+, found: ${line}"
  fi
}

jvm_opts() {
  local -a heap tuning
  read -r -a heap <<<"${HEAP}"
  read -r -a tuning <<<"${JVM_TUNING}"
  JVM_OPTS=(
    "${heap[@]}"
    "${tuning[@]}"
    -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=${LOG4J_CONFIG}"
    "-Dkafka.logs.dir=${LOG_DIR}"
    "-Dkeel.kafka.log.level=${LOG_LEVEL}"
  )
}

render_config() {
  [[ -f "${TEMPLATE}" ]] || die "missing ${TEMPLATE}"
  local line tmp="${PROPS}.tmp.$$" quorum
  if ((NODES == 1)); then
    quorum="controller.quorum.bootstrap.servers=127.0.0.1:${CONTROLLER_PORT}"
  else
    quorum="controller.quorum.voters=${VOTERS}"
  fi
  {
    printf '# GENERATED by deploy/kafka/broker.sh from %s -- edits are overwritten on start.\n' "${TEMPLATE#"${REPO_ROOT}"/}"
    while IFS= read -r line || [[ -n "${line}" ]]; do
      line="${line//@PORT@/${PORT}}"
      line="${line//@CONTROLLER_PORT@/${CONTROLLER_PORT}}"
      line="${line//@DATA_DIR@/${DATA_DIR}}"
      line="${line//@NODE_DIR@/${NODE_DIR}}"
      line="${line//@NODE_ID@/${NODE_ID}}"
      line="${line//@QUORUM@/${quorum}}"
      line="${line//@REPLICATION@/${REPLICATION}}"
      line="${line//@MIN_ISR@/${MIN_ISR}}"
      printf '%s\n' "${line}"
    done <"${TEMPLATE}"
    if [[ "${SECURITY}" == sasl_ssl ]]; then
      [[ -f "${SECURITY_TEMPLATE}" ]] || die "missing ${SECURITY_TEMPLATE}"
      while IFS= read -r line || [[ -n "${line}" ]]; do
        line="${line//@PORT@/${PORT}}"
        line="${line//@CONTROLLER_PORT@/${CONTROLLER_PORT}}"
        line="${line//@TLS_DIR@/${TLS_DIR}}"
        line="${line//@CA_FILE@/${CA_FILE}}"
        line="${line//@ADMIN_PASSWORD@/$(cat "${CREDENTIALS_DIR}/admin.password")}"
        line="${line//@CONTROLLER_PASSWORD@/$(cat "${TLS_DIR}/controller.password")}"
        line="${line//@KEYSTORE_PASSWORD@/$(cat "${TLS_DIR}/keystore.password")}"
        printf '%s\n' "${line}"
      done <"${SECURITY_TEMPLATE}"
    fi
  } >"${tmp}"
  mv "${tmp}" "${PROPS}"
}

# ---------------------------------------------------------------------------------------------
# secured mode: credentials, TLS material, SCRAM users and ACLs
# ---------------------------------------------------------------------------------------------

# 32 hex characters from /dev/urandom: no character needs escaping in a JAAS or properties line.
new_secret() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

python_cmd() {
  if [[ -n "${KEEL_PYTHON:-}" ]]; then printf '%s\n' "${KEEL_PYTHON}"
  elif [[ -x "${REPO_ROOT}/.venv/bin/python" ]]; then printf '%s\n' "${REPO_ROOT}/.venv/bin/python"
  else printf 'python3\n'; fi
}

# The one ACL table (keel_contracts.acl): `user <name>` and `acl ...` lines.
acl_table() {
  PYTHONPATH="${REPO_ROOT}/libs/contracts/src${PYTHONPATH:+:${PYTHONPATH}}" \
    "$(python_cmd)" -m keel_contracts.acl || die "cannot print the ACL table (keel_contracts.acl)"
}

# Passwords (one file per principal, 0600), a local CA and the broker's PKCS12 keystore.
# Existing files are kept, so a restart (or a second start) finds the same credentials.
make_secrets() {
  local principal table
  table="$(acl_table)"
  (
    umask 077
    mkdir -p "${CREDENTIALS_DIR}" "${TLS_DIR}"
    chmod 700 "${CREDENTIALS_DIR}" "${TLS_DIR}"
    while read -r kind principal; do
      [[ "${kind}" == user ]] || continue
      [[ -s "${CREDENTIALS_DIR}/${principal}.password" ]] || new_secret >"${CREDENTIALS_DIR}/${principal}.password"
    done < <(grep '^user ' <<<"${table}")
    for name in controller keystore; do
      [[ -s "${TLS_DIR}/${name}.password" ]] || new_secret >"${TLS_DIR}/${name}.password"
    done
    if [[ ! -s "${TLS_DIR}/ca.key" || ! -s "${CA_FILE}" ]]; then
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=Keel local Kafka CA" -keyout "${TLS_DIR}/ca.key" -out "${CA_FILE}" \
        >"${TLS_DIR}/openssl.log" 2>&1 || { cat "${TLS_DIR}/openssl.log" >&2; die "cannot make the CA"; }
      chmod 644 "${CA_FILE}"
      rm -f "${TLS_DIR}/broker.p12"
    fi
    if [[ ! -s "${TLS_DIR}/broker.p12" ]]; then
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
        >"${TLS_DIR}/broker.ext"
      {
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
          -keyout "${TLS_DIR}/broker.key" -out "${TLS_DIR}/broker.csr" &&
        openssl x509 -req -in "${TLS_DIR}/broker.csr" -CA "${CA_FILE}" -CAkey "${TLS_DIR}/ca.key" \
          -CAserial "${TLS_DIR}/ca.srl" -CAcreateserial -days 825 -extfile "${TLS_DIR}/broker.ext" -out "${TLS_DIR}/broker.pem" &&
        openssl pkcs12 -export -in "${TLS_DIR}/broker.pem" -inkey "${TLS_DIR}/broker.key" \
          -certfile "${CA_FILE}" -name broker -out "${TLS_DIR}/broker.p12" \
          -passout "file:${TLS_DIR}/keystore.password"
      } >"${TLS_DIR}/openssl.log" 2>&1 || { cat "${TLS_DIR}/openssl.log" >&2; die "cannot make the broker keystore"; }
    fi
  )
}

# SCRAM users and ACLs, once per table and password set (a fingerprint of both), through one
# JVM running deploy/kafka/KeelSecurity.java as the admin.
apply_security() {
  local spec="${TLS_DIR}/security.spec" admin_props="${TLS_DIR}/admin.properties" fingerprint
  (
    umask 077
    {
      while read -r kind principal; do
        [[ "${kind}" == user && "${principal}" != admin ]] || continue
        printf 'scram %s %s\n' "${principal}" "${CREDENTIALS_DIR}/${principal}.password"
      done < <(acl_table | grep '^user ')
      acl_table | grep '^acl '
    } >"${spec}"
    {
      printf 'bootstrap.servers=%s\n' "${BOOTSTRAP}"
      printf 'security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n'
      printf 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="%s";\n' \
        "$(cat "${CREDENTIALS_DIR}/admin.password")"
      printf 'ssl.truststore.type=PEM\nssl.truststore.location=%s\n' "${CA_FILE}"
    } >"${admin_props}"
  )
  fingerprint="$({ cat "${spec}"; cat "${CREDENTIALS_DIR}"/*.password; } | sha256sum | cut -d' ' -f1)"
  if [[ -f "${APPLIED_MARKER}" && "$(cat "${APPLIED_MARKER}")" == "${fingerprint}" ]]; then
    return 0
  fi
  if ! "${JAVA}" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
      "-Dlog4j2.configurationFile=${LOG4J_CONFIG}" "-Dkafka.logs.dir=${LOG_DIR}" -Dkeel.kafka.log.level=WARN \
      -cp "${LIBS_DIR}/*" "${SECURITY_TOOL}" "${admin_props}" "${spec}" >"${LOG_DIR}/security.log" 2>&1; then
    cat "${LOG_DIR}/security.log" >&2 || true
    die "could not apply SCRAM users and ACLs (the broker is left running: '${0##*/} stop')"
  fi
  grep '^kafka:' "${LOG_DIR}/security.log" >&2 || true
  printf '%s\n' "${fingerprint}" >"${APPLIED_MARKER}"
}

# Kafka Uuid: 16 random bytes, URL-safe base64 without padding; must not start with '-'.
new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "${id}" != -* && ${#id} -eq 22 ]] && break
  done
  printf '%s\n' "${id}"
}

format_storage() {
  # Once per data dir. Changing the ports later is fine: the single voter's endpoint is
  # refreshed from the config on start.
  if [[ -f "${STORAGE_DIR}/meta.properties" ]]; then
    [[ "${SECURITY}" != sasl_ssl || -f "${SCRAM_MARKER}" ]] ||
      die "${DATA_DIR} was formatted without the admin SCRAM user (a plaintext broker): '${0##*/} clean' it, or KEEL_KAFKA_SECURITY=plaintext"
    return 0
  fi
  local -a scram=()
  if [[ "${SECURITY}" == sasl_ssl ]]; then
    scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$(cat "${CREDENTIALS_DIR}/admin.password")]")
  fi
  [[ -f "${CLUSTER_ID_FILE}" ]] || new_cluster_id >"${CLUSTER_ID_FILE}"
  local cluster_id
  cluster_id="$(cat "${CLUSTER_ID_FILE}")"
  local -a quorum=(--standalone)
  ((NODES == 1)) || quorum=() # the static voter set in the config names the quorum
  log "formatting KRaft storage in ${STORAGE_DIR} (cluster id ${cluster_id}, node ${NODE_ID} of ${NODES})"
  if ! "${JAVA}" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
      "-Dlog4j2.configurationFile=${LOG4J_CONFIG}" "-Dkafka.logs.dir=${LOG_DIR}" -Dkeel.kafka.log.level=WARN \
      -cp "${LIBS_DIR}/*" kafka.tools.StorageTool format \
      --config "${PROPS}" --cluster-id "${cluster_id}" "${quorum[@]}" "${scram[@]}" >"${LOG_DIR}/format.log" 2>&1; then
    cat "${LOG_DIR}/format.log" >&2 || true
    die "formatting ${STORAGE_DIR} failed (if it holds an old or broken install: '${0##*/} clean')"
  fi
  if [[ "${SECURITY}" == sasl_ssl ]]; then : >"${SCRAM_MARKER}"; fi
}

# Shows what this start attempt logged (server.log from byte offset $1 on, and the JVM's stdout).
tail_logs_on_failure() {
  local offset="${1:-0}"
  if [[ -f "${SERVER_LOG}" ]] && (($(wc -c <"${SERVER_LOG}") > offset)); then
    log "---- last lines of ${SERVER_LOG} ----"
    tail -c "+$((offset + 1))" "${SERVER_LOG}" | tail -n 40 >&2 || true
  fi
  if [[ -s "${STDOUT_LOG}" ]]; then
    log "---- ${STDOUT_LOG} ----"
    tail -n 20 "${STDOUT_LOG}" >&2 || true
  fi
}

# Waits until the broker logs "Kafka Server started" (after log offset $2) and the port answers.
wait_ready() {
  local pid="$1" offset="$2" start_ms="$3" deadline
  deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if ! alive "${pid}"; then
      tail_logs_on_failure "${offset}"
      rm -f "${PID_FILE}"
      die "broker process ${pid} exited during start-up"
    fi
    # The log may have rolled over (50 MB) since the offset was taken.
    if [[ -f "${SERVER_LOG}" ]] && (($(wc -c <"${SERVER_LOG}") < offset)); then offset=0; fi
    # No `grep -q`: with pipefail an early grep exit would SIGPIPE tail and fail the pipeline.
    if [[ -f "${SERVER_LOG}" ]] &&
        tail -c "+$((offset + 1))" "${SERVER_LOG}" | grep -F 'Kafka Server started' >/dev/null &&
        port_open 127.0.0.1 "${PORT}"; then
      log "Kafka ${KAFKA_VERSION} node ${NODE_ID} ready on 127.0.0.1:${PORT} (pid ${pid}, $(elapsed "${start_ms}") s; data ${NODE_DIR})"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail_logs_on_failure "${offset}"
      die "broker (pid ${pid}) not ready after ${START_TIMEOUT} s; it is left running: '${0##*/} stop' to stop it"
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------

cmd_start() {
  if [[ -n "${EXTERNAL_BOOTSTRAP}" ]]; then
    log "KEEL_KAFKA_BOOTSTRAP is set: using the external cluster ${EXTERNAL_BOOTSTRAP}, starting nothing"
    printf '%s\n' "${EXTERNAL_BOOTSTRAP}"
    return 0
  fi
  local start_ms pid node
  local -a launch=() wait_pids=() wait_offsets=() wait_nodes=()
  start_ms="$(now_ms)"
  resolve_data_dir
  # One `start` at a time per data dir: a second concurrent `start` waits here, then finds the
  # broker running. (fd 8 is closed for the broker JVM below, so only this script holds it.)
  if command -v flock >/dev/null 2>&1; then
    exec 8>"${DATA_DIR}/.start.lock"
    flock 8
  fi
  # Nodes already running are kept (a second `start` after one node was killed restarts that
  # node alone); a node alive but not answering yet is waited for.
  for node in $(selected_nodes); do
    select_node "${node}"
    pid="$(running_pid)"
    if [[ -n "${pid}" ]]; then
      if port_open 127.0.0.1 "${PORT}"; then
        log "node ${NODE_ID} already running on 127.0.0.1:${PORT} (pid ${pid}, data ${NODE_DIR})"
      else
        log "node ${NODE_ID}: pid ${pid} is alive but 127.0.0.1:${PORT} does not answer yet; waiting for it"
        wait_pids+=("${pid}") wait_offsets+=(0) wait_nodes+=("${node}")
      fi
      continue
    fi
    rm -f "${PID_FILE}"
    port_open 127.0.0.1 "${PORT}" &&
      die "port ${PORT} is already in use by another process (another broker? set KEEL_KAFKA_PORT, or KEEL_KAFKA_BOOTSTRAP to use it)"
    port_open 127.0.0.1 "${CONTROLLER_PORT}" &&
      die "controller port ${CONTROLLER_PORT} is already in use by another process (set KEEL_KAFKA_CONTROLLER_PORT)"
    launch+=("${node}")
  done

  if ((${#launch[@]})); then
    check_java
    cmd_fetch quiet
    # Refuse to fill (and later `clean`) a non-empty directory that this script did not create.
    if [[ ! -f "${OWNER_MARKER}" ]]; then
      # The start lock (taken above) is the only entry allowed in a fresh directory.
      [[ -z "$(ls -A "${DATA_DIR}" | grep -vx '.start.lock')" ]] ||
        die "KEEL_KAFKA_DATA_DIR=${DATA_DIR} is not empty and was not created by ${0##*/}; choose another directory"
      : >"${OWNER_MARKER}"
    fi
    if [[ "${SECURITY}" == sasl_ssl ]]; then make_secrets; fi
    jvm_opts
  fi
  # Every node of a cluster is launched before any is waited for: a node is ready only once
  # a majority of the controller quorum runs.
  for node in "${launch[@]}"; do
    select_node "${node}"
    mkdir -p "${LOG_DIR}" "${STORAGE_DIR}"
    (umask 077; render_config)
    format_storage
    jvm_opts
    local offset=0
    [[ -f "${SERVER_LOG}" ]] && offset="$(wc -c <"${SERVER_LOG}" | tr -d ' ')"
    {
      printf '==== %s starting: %s' "$(date '+%F %T')" "${JAVA}"
      printf ' %q' "${JVM_OPTS[@]}" -cp "${LIBS_DIR}/*" kafka.Kafka "${PROPS}"
      printf '\n'
    } >"${STDOUT_LOG}"
    # setsid: own session, so Ctrl-C in the calling terminal or make does not reach the broker.
    setsid nohup "${JAVA}" "${JVM_OPTS[@]}" -cp "${LIBS_DIR}/*" kafka.Kafka "${PROPS}" \
      >>"${STDOUT_LOG}" 2>&1 </dev/null 8>&- &
    pid=$!
    printf '%s\n' "${pid}" >"${PID_FILE}"
    log "started Kafka ${KAFKA_VERSION} node ${NODE_ID} (pid ${pid}), waiting for 127.0.0.1:${PORT} ..."
    wait_pids+=("${pid}") wait_offsets+=("${offset}") wait_nodes+=("${node}")
  done
  local i
  for ((i = 0; i < ${#wait_nodes[@]}; i++)); do
    select_node "${wait_nodes[i]}"
    wait_ready "${wait_pids[i]}" "${wait_offsets[i]}" "${start_ms}"
  done
  # A changed password file or ACL table is applied to a running broker too (rotation).
  if [[ "${SECURITY}" == sasl_ssl ]]; then
    apply_security
    ((${#launch[@]} == 0)) || log "secured: SASL_SSL (SCRAM-SHA-512) with ACLs; credentials in ${CREDENTIALS_DIR}"
  fi
  printf '%s\n' "${BOOTSTRAP}"
}

cmd_stop() {
  if [[ -n "${EXTERNAL_BOOTSTRAP}" ]]; then
    log "KEEL_KAFKA_BOOTSTRAP is set (${EXTERNAL_BOOTSTRAP}): nothing to stop"
    return 0
  fi
  [[ -d "${DATA_DIR}" ]] || { log "not running (no ${DATA_DIR})"; return 0; }
  resolve_data_dir
  local pid start_ms deadline node
  local -a pids=()
  # SIGTERM to every node at once: stopped one by one, the last nodes of a cluster would wait
  # for a controller quorum that is already gone.
  for node in $(selected_nodes); do
    select_node "${node}"
    pid="$(running_pid)"
    rm -f "${PID_FILE}"
    [[ -n "${pid}" ]] || continue
    pids+=("${pid}")
  done
  if ((${#pids[@]} == 0)); then
    log "not running"
    return 0
  fi
  start_ms="$(now_ms)"
  log "stopping broker (pid ${pids[*]}) ..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  for pid in "${pids[@]}"; do
    while alive "${pid}" && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if alive "${pid}"; then
      log "pid ${pid}: no clean exit after ${STOP_TIMEOUT} s, sending SIGKILL"
      kill -KILL "${pid}" 2>/dev/null || true
      while alive "${pid}"; do sleep 0.1; done
    fi
  done
  log "stopped in $(elapsed "${start_ms}") s"
}

cmd_status() {
  if [[ -n "${EXTERNAL_BOOTSTRAP}" ]]; then
    local first="${EXTERNAL_BOOTSTRAP%%,*}"
    first="${first#*://}"
    if port_open "${first%:*}" "${first##*:}"; then
      log "external cluster ${EXTERNAL_BOOTSTRAP} answers"
      printf '%s\n' "${EXTERNAL_BOOTSTRAP}"
      return 0
    fi
    log "external cluster ${EXTERNAL_BOOTSTRAP} does not answer"
    return 1
  fi
  [[ -d "${DATA_DIR}" ]] || { log "not running"; return 1; }
  resolve_data_dir
  local pid node down=0
  for node in $(selected_nodes); do
    select_node "${node}"
    pid="$(running_pid)"
    if [[ -n "${pid}" ]] && port_open 127.0.0.1 "${PORT}"; then
      log "node ${NODE_ID} running on 127.0.0.1:${PORT} (pid ${pid}, data ${NODE_DIR})"
    elif [[ -n "${pid}" ]]; then
      log "node ${NODE_ID}: process ${pid} is alive but 127.0.0.1:${PORT} does not answer (starting, or wrong KEEL_KAFKA_PORT?)"
      down=1
    else
      log "node ${NODE_ID} not running"
      down=1
    fi
  done
  ((down == 0)) || return 1
  printf '%s\n' "${BOOTSTRAP}"
}

cmd_logs() {
  [[ -d "${DATA_DIR}" ]] || die "no data dir ${DATA_DIR} (never started?)"
  resolve_data_dir
  [[ -z "${ONLY_NODE}" ]] || select_node "${ONLY_NODE}"
  [[ -f "${SERVER_LOG}" ]] || die "no broker log yet (${SERVER_LOG})"
  if [[ "${1:-}" == "-f" || "${1:-}" == "--follow" ]]; then
    exec tail -n 50 -F "${SERVER_LOG}"
  fi
  tail -n "${KEEL_KAFKA_LOG_LINES:-200}" "${SERVER_LOG}"
}

cmd_clean() {
  cmd_stop
  [[ -d "${DATA_DIR}" ]] || return 0
  resolve_data_dir
  # Only delete a directory this script created (or an empty one).
  if [[ ! -f "${OWNER_MARKER}" && -n "$(ls -A "${DATA_DIR}")" ]]; then
    die "${DATA_DIR} has no ${OWNER_MARKER##*/} marker (not made by this script); not deleting it"
  fi
  rm -rf "${DATA_DIR}"
  log "removed ${DATA_DIR}"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "${cmd}" in
    fetch) cmd_fetch ;;
    start) validate_config; cmd_start ;;
    stop) validate_config; cmd_stop ;;
    status) validate_config; cmd_status ;;
    logs) validate_config; cmd_logs "$@" ;;
    clean) validate_config; cmd_clean ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
