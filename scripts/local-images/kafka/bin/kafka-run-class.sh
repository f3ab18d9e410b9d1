#!/bin/bash
# Run a Kafka class with the jars in ../libs; the environment variables of Kafka's own script.
base_dir=$(cd "$(dirname "$0")/.." && pwd)
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx256M}
KAFKA_JVM_PERFORMANCE_OPTS=${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}
KAFKA_LOG4J_OPTS=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$base_dir/config/tools-log4j2.yaml}
classpath="$base_dir/libs/*${CLASSPATH:+:$CLASSPATH}"
# shellcheck disable=SC2086 # option lists, as in Kafka's script
exec "${JAVA_HOME:+$JAVA_HOME/bin/}java" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_GC_LOG_OPTS \
  $KAFKA_JMX_OPTS $KAFKA_LOG4J_OPTS -Dkafka.logs.dir="${LOG_DIR:-/usr/logs}" -cp "$classpath" $KAFKA_OPTS "$@"
