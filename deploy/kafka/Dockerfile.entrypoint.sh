#!/usr/bin/env bash
# Entry point of deploy/kafka/Dockerfile: write server.properties from the environment (the
# official image's convention), format the storage once, then exec the broker as PID 1 so a
# container stop's SIGTERM reaches it (a clean shutdown, no log recovery on the next start).
#   entrypoint.sh          configure, format once, run the broker
#   entrypoint.sh health   exit 0 when the client port accepts connections (the HEALTHCHECK;
#                          one word per argument: podman's Docker API splits a `bash -c`
#                          string at spaces)
set -euo pipefail

if [[ "${1:-}" == health ]]; then
  exec 3<>"/dev/tcp/127.0.0.1/${KAFKA_HEALTH_PORT:-9092}"
  exit 0
fi

DATA="${KAFKA_LOG_DIRS:-/var/lib/kafka/data}"
CONFIG_DIR="$(mktemp -d)"   # the root filesystem may be read-only: config goes to /tmp
CONFIG="${CONFIG_DIR}/server.properties"

# Defaults for one node that is broker and controller; any KAFKA_* variable overrides them.
declare -A props=(
  [process.roles]=broker,controller
  [node.id]=1
  [listeners]=PLAINTEXT://:9092,CONTROLLER://:9093
  [advertised.listeners]=PLAINTEXT://localhost:9092
  [controller.listener.names]=CONTROLLER
  [listener.security.protocol.map]=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
  [controller.quorum.bootstrap.servers]=localhost:9093
  [log.dirs]="${DATA}"
  [offsets.topic.replication.factor]=1
  [offsets.topic.num.partitions]=5
  [transaction.state.log.replication.factor]=1
  [transaction.state.log.min.isr]=1
  [transaction.state.log.num.partitions]=5
  [share.coordinator.state.topic.replication.factor]=1
  [share.coordinator.state.topic.min.isr]=1
  [group.initial.rebalance.delay.ms]=0
  [num.network.threads]=2
  [num.io.threads]=4
)
# KAFKA_FOO_BAR -> foo.bar; ___ -> '-', __ -> '_' (as the official image). KAFKA_HEAP_OPTS,
# KAFKA_JVM_OPTS, KAFKA_HEALTH_PORT and KAFKA_HOME are not broker settings.
while IFS='=' read -r name value; do
  case "${name}" in
    KAFKA_HEAP_OPTS | KAFKA_JVM_OPTS | KAFKA_HEALTH_PORT | KAFKA_HOME | KAFKA_LOG_LEVEL) continue ;;
  esac
  key="${name#KAFKA_}"
  key="${key,,}"
  key="${key//___/-}"
  key="${key//__/@}"
  key="${key//_/.}"
  props["${key//@/_}"]="${value}"
done < <(env | grep -E '^KAFKA_[A-Z0-9_]+=' || true)
# A static quorum (controller.quorum.voters) and the dynamic one exclude each other.
if [[ -n "${props[controller.quorum.voters]:-}" ]]; then
  unset 'props[controller.quorum.bootstrap.servers]'
fi
for key in "${!props[@]}"; do printf '%s=%s\n' "${key}" "${props[${key}]}"; done | sort >"${CONFIG}"

cat >"${CONFIG_DIR}/log4j2.properties" <<LOG4J
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${KAFKA_LOG_LEVEL:-INFO}
rootLogger.appenderRef.out.ref = out
LOG4J

JAVA_OPTS=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
  ${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError}
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=${CONFIG_DIR}/log4j2.properties")
CP="/opt/kafka/libs/*"

if [[ ! -f "${DATA}/meta.properties" ]]; then
  format=(--config "${CONFIG}" --cluster-id "${CLUSTER_ID:-$(java -cp "${CP}" kafka.tools.StorageTool random-uuid)}")
  [[ -n "${props[controller.quorum.voters]:-}" ]] || format+=(--standalone)
  java "${JAVA_OPTS[@]}" -cp "${CP}" kafka.tools.StorageTool format "${format[@]}" --ignore-formatted
fi
exec java "${JAVA_OPTS[@]}" -cp "${CP}" kafka.Kafka "${CONFIG}"
