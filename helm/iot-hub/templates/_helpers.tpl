{{/* Names ---------------------------------------------------------------------------------- */}}
{{- define "iot-hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "iot-hub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "iot-hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: the standard app.kubernetes.io set; pass (dict "ctx" $ "component" "web"). -------- */}}
{{- define "iot-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iot-hub.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "iot-hub.labels" -}}
helm.sh/chart: {{ include "iot-hub.chart" .ctx }}
{{ include "iot-hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: iot-monitoring
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Image ---------------------------------------------------------------------------------- */}}
{{- define "iot-hub.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Secrets -------------------------------------------------------------------------------- */}}
{{- define "iot-hub.secretName" -}}
{{- default (include "iot-hub.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* The session-cookie secret: from values, else the one already installed, else a new one. */}}
{{- define "iot-hub.webStorageSecret" -}}
{{- if .Values.web.storageSecret -}}
{{- .Values.web.storageSecret -}}
{{- else -}}
{{- $installed := lookup "v1" "Secret" .Release.Namespace (include "iot-hub.fullname" .) -}}
{{- $data := dig "data" (dict) ($installed | default (dict)) -}}
{{- if hasKey $data "HUB_WEB_STORAGE_SECRET" -}}
{{- index $data "HUB_WEB_STORAGE_SECRET" | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* env entries for one key of the Secret: (dict "ctx" $ "name" "HUB_REDIS_URL" "key" "redisUrl") */}}
{{- define "iot-hub.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "iot-hub.secretName" .ctx }}
      key: {{ if .ctx.Values.existingSecret }}{{ index .ctx.Values.existingSecretKeys .key }}{{ else }}{{ index (dict "databaseUrl" "HUB_DATABASE_URL" "redisUrl" "HUB_REDIS_URL" "webStorageSecret" "HUB_WEB_STORAGE_SECRET") .key }}{{ end }}
{{- end -}}

{{/* What changes the Secret's content, hashed into the pods' annotations (rolls them on change). */}}
{{- define "iot-hub.secretChecksum" -}}
{{- list .Values.existingSecret .Values.existingSecretKeys .Values.database.url .Values.redis.url .Values.web.storageSecret | toJson | sha256sum -}}
{{- end -}}

{{/* Checks that a schema cannot express (they compare two values) and required values. ------- */}}
{{- define "iot-hub.validate" -}}
{{- $partitions := int (index .Values.config "HUB_TOPIC_PARTITIONS" | default 6) -}}
{{- if gt (int .Values.worker.replicas) $partitions -}}
{{- fail (printf "worker.replicas (%d) is more than HUB_TOPIC_PARTITIONS (%d): with one consumer group a partition goes to one worker, so the extra workers would sit idle. Lower worker.replicas or raise config.HUB_TOPIC_PARTITIONS (topics that already exist keep their partition count)." (int .Values.worker.replicas) $partitions) -}}
{{- end -}}
{{- with .Values.worker.autoscaling -}}
{{- if .enabled -}}
{{- if gt (int .maxReplicas) $partitions -}}
{{- fail (printf "worker.autoscaling.maxReplicas (%d) is more than HUB_TOPIC_PARTITIONS (%d): workers beyond the partition count get no work. Lower maxReplicas or raise config.HUB_TOPIC_PARTITIONS." (int .maxReplicas) $partitions) -}}
{{- end -}}
{{- if gt (int .minReplicas) (int .maxReplicas) -}}
{{- fail (printf "worker.autoscaling.minReplicas (%d) is more than maxReplicas (%d)." (int .minReplicas) (int .maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $name := list "HUB_KAFKA_BOOTSTRAP" "HUB_HTTP_PORT" "HUB_WORKER_WEB_PORT" "HUB_WEB_HOST" "HUB_RULES_FILE" "HUB_NOTIFICATIONS_FILE" -}}
{{- if hasKey $.Values.config $name -}}
{{- fail (printf "config.%s: the chart sets it (kafka.bootstrap, web.port, worker.port, rules, notifications); remove it from config." $name) -}}
{{- end -}}
{{- end -}}
{{- range $name := list "HUB_DATABASE_URL" "HUB_REDIS_URL" "HUB_WEB_STORAGE_SECRET" "HUB_KAFKA_SASL_PASSWORD" -}}
{{- if hasKey $.Values.config $name -}}
{{- fail (printf "config.%s: a secret does not belong in the ConfigMap; set database.url, redis.url and web.storageSecret, or existingSecret (kafka.sasl.existingSecret for the Kafka password)." $name) -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := .Values.config -}}
{{- if or (hasPrefix "HUB_KAFKA_SECURITY_" $name) (hasPrefix "HUB_KAFKA_SASL_" $name) (hasPrefix "HUB_KAFKA_SSL_" $name) -}}
{{- fail (printf "config.%s: the chart sets the Kafka security settings from kafka.securityProtocol, kafka.sasl and kafka.tls; remove it from config." $name) -}}
{{- end -}}
{{- end -}}
{{- include "iot-hub.validateKafkaSecurity" . -}}
{{- if and .Values.existingSecret (or .Values.database.url .Values.redis.url .Values.web.storageSecret) -}}
{{- fail "existingSecret is set, and so is database.url, redis.url or web.storageSecret: with existingSecret the chart reads all three from that Secret; remove the others." -}}
{{- end -}}
{{- if not .Values.kafka.bootstrap -}}
{{- fail "kafka.bootstrap is required: the Kafka bootstrap servers as host:port[,host:port...] (see examples/ for Strimzi, Bitnami and AWS MSK)." -}}
{{- end -}}
{{- if not .Values.existingSecret -}}
{{- if not .Values.database.url -}}
{{- fail "database.url is required (or existingSecret): the PostgreSQL URL, postgresql://USER:PASSWORD@HOST:5432/DATABASE. The chart ships no default password." -}}
{{- end -}}
{{- if not .Values.redis.url -}}
{{- fail "redis.url is required (or existingSecret): the Redis URL, redis://[:PASSWORD@]HOST:6379/0." -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod pieces shared by the worker, the web app and the migration job ---------------------- */}}
{{- define "iot-hub.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "iot-hub.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "iot-hub.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container env shared by worker and web: the service URLs from the Secret. */}}
{{- define "iot-hub.commonEnv" -}}
{{ include "iot-hub.secretEnv" (dict "ctx" . "name" "HUB_DATABASE_URL" "key" "databaseUrl") }}
{{ include "iot-hub.secretEnv" (dict "ctx" . "name" "HUB_REDIS_URL" "key" "redisUrl") }}
{{- end -}}


{{/* TLS and SASL ---------------------------------------------------------------------------- */}}
{{/* Where a service's TLS files are mounted: /etc/iot-hub/tls/<name>/{ca.crt,tls.crt,tls.key}. */}}
{{- define "iot-hub.tlsDir" -}}
/etc/iot-hub/tls/{{ . }}
{{- end -}}

{{/* The TLS values of the services a pod talks to, by mount name: pass (dict "ctx" $ "services"
     (list "kafka" "postgres" "redis")). Kafka's files only with a TLS security protocol. */}}
{{- define "iot-hub.tlsServices" -}}
{{- $all := dict "kafka" .ctx.Values.kafka.tls "postgres" .ctx.Values.database.tls "redis" .ctx.Values.redis.tls -}}
{{- $out := dict -}}
{{- range $name := .services -}}
{{- $tls := index $all $name -}}
{{- if and (or $tls.existingSecret $tls.clientSecret) (or (ne $name "kafka") (include "iot-hub.kafkaUsesTls" $.ctx)) -}}
{{- $_ := set $out $name $tls -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Projected volumes of Secret files, read-only for the pods' group (fsGroup) and no one else:
     0440 is 288 in decimal. Not subPath mounts, so a renewed Secret reaches the running pods. */}}
{{- define "iot-hub.tlsVolumes" -}}
{{- range $name, $tls := include "iot-hub.tlsServices" . | fromJson }}
- name: tls-{{ $name }}
  projected:
    defaultMode: 288
    sources:
      {{- with $tls.existingSecret }}
      - secret:
          name: {{ . }}
          items:
            - key: {{ $tls.caKey }}
              path: ca.crt
      {{- end }}
      {{- with $tls.clientSecret }}
      - secret:
          name: {{ . }}
          items:
            - key: {{ $tls.certKey }}
              path: tls.crt
            - key: {{ $tls.keyKey }}
              path: tls.key
      {{- end }}
{{- end }}
{{- end -}}

{{- define "iot-hub.tlsMounts" -}}
{{- range $name, $_ := include "iot-hub.tlsServices" . | fromJson }}
- name: tls-{{ $name }}
  mountPath: {{ include "iot-hub.tlsDir" $name }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* What changes the mounted files' sources, hashed into the pods' annotations. */}}
{{- define "iot-hub.tlsChecksum" -}}
{{- list .Values.kafka.securityProtocol .Values.kafka.sasl .Values.kafka.tls .Values.database.tls .Values.redis.tls | toJson | sha256sum -}}
{{- end -}}

{{- define "iot-hub.kafkaUsesTls" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end -}}
{{- end -}}

{{- define "iot-hub.kafkaUsesSasl" -}}
{{- if has .Values.kafka.securityProtocol (list "SASL_PLAINTEXT" "SASL_SSL") }}true{{ end -}}
{{- end -}}

{{/* The worker's Kafka security settings (the web app and the migration job do not talk to
     Kafka): plain values for the protocol and the file paths, the password (and the user name,
     unless given as a value) from kafka.sasl.existingSecret. */}}
{{- define "iot-hub.kafkaSecurityEnv" -}}
{{- $kafka := .Values.kafka -}}
- name: HUB_KAFKA_SECURITY_PROTOCOL
  value: {{ $kafka.securityProtocol | quote }}
{{- if include "iot-hub.kafkaUsesSasl" . }}
- name: HUB_KAFKA_SASL_MECHANISM
  value: {{ $kafka.sasl.mechanism | quote }}
{{- if $kafka.sasl.username }}
- name: HUB_KAFKA_SASL_USERNAME
  value: {{ $kafka.sasl.username | quote }}
{{- else }}
- name: HUB_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $kafka.sasl.existingSecret }}
      key: {{ $kafka.sasl.usernameKey }}
{{- end }}
- name: HUB_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $kafka.sasl.existingSecret }}
      key: {{ $kafka.sasl.passwordKey }}
{{- end }}
{{- if include "iot-hub.kafkaUsesTls" . }}
{{- $dir := include "iot-hub.tlsDir" "kafka" }}
{{- if $kafka.tls.existingSecret }}
- name: HUB_KAFKA_SSL_CAFILE
  value: {{ printf "%s/ca.crt" $dir }}
{{- end }}
{{- if $kafka.tls.clientSecret }}
- name: HUB_KAFKA_SSL_CERTFILE
  value: {{ printf "%s/tls.crt" $dir }}
- name: HUB_KAFKA_SSL_KEYFILE
  value: {{ printf "%s/tls.key" $dir }}
{{- end }}
- name: HUB_KAFKA_SSL_CHECK_HOSTNAME
  value: {{ $kafka.tls.checkHostname | toString | quote }}
{{- end }}
{{- end -}}

{{- define "iot-hub.validateKafkaSecurity" -}}
{{- $kafka := .Values.kafka -}}
{{- $protocol := $kafka.securityProtocol -}}
{{- if include "iot-hub.kafkaUsesSasl" . -}}
{{- if not $kafka.sasl.existingSecret -}}
{{- fail (printf "kafka.sasl.existingSecret is required with kafka.securityProtocol=%s: the name of a Secret with the SASL password (key kafka.sasl.passwordKey, default password) and user name (key kafka.sasl.usernameKey, default username, or set kafka.sasl.username). The chart takes no Kafka password as a value." $protocol) -}}
{{- end -}}
{{- else if $kafka.sasl.existingSecret -}}
{{- fail (printf "kafka.sasl.existingSecret is set but kafka.securityProtocol=%s does not use SASL: set SASL_SSL (or SASL_PLAINTEXT), or remove the Secret." $protocol) -}}
{{- end -}}
{{- if and (not (include "iot-hub.kafkaUsesTls" .)) (or $kafka.tls.existingSecret $kafka.tls.clientSecret) -}}
{{- fail (printf "kafka.tls.existingSecret or kafka.tls.clientSecret is set but kafka.securityProtocol=%s does not use TLS: set SASL_SSL (or SSL), or remove the Secret. The hub never falls back to plaintext." $protocol) -}}
{{- end -}}
{{- end -}}
