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
{{- range $name := list "HUB_KAFKA_BOOTSTRAP" "HUB_HTTP_PORT" "HUB_WORKER_WEB_PORT" "HUB_WEB_HOST" "HUB_RULES_FILE" -}}
{{- if hasKey $.Values.config $name -}}
{{- fail (printf "config.%s: the chart sets it (kafka.bootstrap, web.port, worker.port, rules); remove it from config." $name) -}}
{{- end -}}
{{- end -}}
{{- range $name := list "HUB_DATABASE_URL" "HUB_REDIS_URL" "HUB_WEB_STORAGE_SECRET" -}}
{{- if hasKey $.Values.config $name -}}
{{- fail (printf "config.%s: a secret does not belong in the ConfigMap; set database.url, redis.url and web.storageSecret, or existingSecret." $name) -}}
{{- end -}}
{{- end -}}
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
