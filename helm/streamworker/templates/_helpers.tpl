{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "streamworker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "streamworker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "streamworker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. */}}
{{- define "streamworker.labels" -}}
helm.sh/chart: {{ include "streamworker.chart" . }}
{{ include "streamworker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selects every pod of the release: workers and the migration Job. */}}
{{- define "streamworker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamworker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "streamworker.workerSelectorLabels" -}}
{{ include "streamworker.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "streamworker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streamworker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "streamworker.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "streamworker.databaseSecretName" -}}
{{- default (printf "%s-db" (include "streamworker.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "streamworker.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
{{- end }}

{{- define "streamworker.remoteTlsSecretName" -}}
{{- default (printf "%s-docker-tls" (include "streamworker.fullname" .)) .Values.docker.remoteTls.existingSecret }}
{{- end }}

{{/* The access mode, checked once: there is no default, the operator chooses. */}}
{{- define "streamworker.dockerMode" -}}
{{- $mode := .Values.docker.mode }}
{{- if not $mode }}
{{- fail "docker.mode is required: socket (the nodes' /var/run/docker.sock; also set docker.socket.groupId), dind (a privileged Docker-in-Docker sidecar) or remoteTls (a daemon over mutual TLS)" }}
{{- end }}
{{- if not (has $mode (list "socket" "dind" "remoteTls")) }}
{{- fail (printf "docker.mode must be socket, dind or remoteTls (got %q)" $mode) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/* The socket's group, which the worker joins: given, numeric, and not root's by accident. */}}
{{- define "streamworker.socketGroupId" -}}
{{- $gid := .Values.docker.socket.groupId }}
{{- if or (kindIs "invalid" $gid) (eq (toString $gid) "") }}
{{- fail "docker.socket.groupId is required in socket mode: the group owning the socket on the nodes (stat -c %g /var/run/docker.sock); the worker (uid 10001) joins that group only" }}
{{- end }}
{{- if and (kindIs "string" $gid) (not (regexMatch "^[0-9]+$" $gid)) }}
{{- fail (printf "docker.socket.groupId must be a numeric group id (got %q)" $gid) }}
{{- end }}
{{- $n := int64 $gid }}
{{- if lt $n 0 }}
{{- fail (printf "docker.socket.groupId must be a numeric group id (got %v)" $gid) }}
{{- end }}
{{- if and (eq $n 0) (not .Values.docker.socket.allowRootGroup) }}
{{- fail "docker.socket.groupId is 0: the worker would join root's group. If the socket really belongs to group 0 on the nodes, say so with docker.socket.allowRootGroup=true" }}
{{- end }}
{{- $n }}
{{- end }}

{{/* The database URL for the chart's own Secrets; there is no default (no default password). */}}
{{- define "streamworker.databaseUrl" -}}
{{- if not .Values.database.url }}
{{- fail "database.url is required (the chart ships no default password): set database.url, or database.existingSecret naming a Secret whose key database.existingSecretKey holds the URL" }}
{{- end }}
{{- .Values.database.url }}
{{- end }}

{{/* Kafka's security protocol, checked with what it needs; the settings go to the ConfigMap. */}}
{{- define "streamworker.kafkaProtocol" -}}
{{- $sec := .Values.kafka.security }}
{{- $protocol := $sec.protocol }}
{{- if not (has $protocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) }}
{{- fail (printf "kafka.security.protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (got %q)" $protocol) }}
{{- end }}
{{- if hasPrefix "SASL_" $protocol }}
{{- if not (has $sec.sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) }}
{{- fail (printf "kafka.security.sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with protocol %s (got %q)" $protocol $sec.sasl.mechanism) }}
{{- end }}
{{- if not $sec.sasl.username }}
{{- fail (printf "kafka.security.sasl.username is required with protocol %s" $protocol) }}
{{- end }}
{{- if not (or $sec.sasl.existingSecret $sec.sasl.password) }}
{{- fail (printf "kafka.security.sasl.existingSecret (a Secret holding the password under kafka.security.sasl.existingSecretKey) or kafka.security.sasl.password is required with protocol %s" $protocol) }}
{{- end }}
{{- else if or $sec.sasl.mechanism $sec.sasl.username $sec.sasl.existingSecret $sec.sasl.password }}
{{- fail (printf "kafka.security.sasl.* is set but kafka.security.protocol is %s: use SASL_PLAINTEXT or SASL_SSL" $protocol) }}
{{- end }}
{{- if hasSuffix "SSL" $protocol }}
{{- if and (not $sec.ssl.existingSecret) (or $sec.ssl.certFile $sec.ssl.keyFile) }}
{{- fail "kafka.security.ssl.certFile and keyFile are files of kafka.security.ssl.existingSecret: name that Secret" }}
{{- end }}
{{- if ne (empty $sec.ssl.certFile) (empty $sec.ssl.keyFile) }}
{{- fail "kafka.security.ssl.certFile and kafka.security.ssl.keyFile go together (a client certificate and its key)" }}
{{- end }}
{{- else if $sec.ssl.existingSecret }}
{{- fail (printf "kafka.security.ssl.existingSecret is set but kafka.security.protocol is %s: use SSL or SASL_SSL" $protocol) }}
{{- end }}
{{- $protocol }}
{{- end }}

{{/* Whether Kafka's TLS files are mounted (from kafka.security.ssl.existingSecret). */}}
{{- define "streamworker.kafkaTlsMounted" -}}
{{- if and (hasSuffix "SSL" .Values.kafka.security.protocol) .Values.kafka.security.ssl.existingSecret }}true{{ end }}
{{- end }}

{{- define "streamworker.kafkaPasswordSecretName" -}}
{{- default (printf "%s-kafka" (include "streamworker.fullname" .)) .Values.kafka.security.sasl.existingSecret }}
{{- end }}

{{- define "streamworker.kafkaPasswordSecretKey" -}}
{{- if .Values.kafka.security.sasl.existingSecret }}{{ .Values.kafka.security.sasl.existingSecretKey }}{{ else }}sasl-password{{ end }}
{{- end }}

{{/* Environment telling the worker how to reach Docker. */}}
{{- define "streamworker.dockerEnv" -}}
{{- $mode := include "streamworker.dockerMode" . }}
{{- if eq $mode "socket" }}
- name: DOCKER_HOST
  value: unix:///var/run/docker.sock
{{- else if eq $mode "dind" }}
- name: DOCKER_HOST
  value: tcp://127.0.0.1:2376
- name: DOCKER_TLS_VERIFY
  value: "1"
- name: DOCKER_CERT_PATH
  value: /certs/client
{{- else }}
- name: DOCKER_HOST
  value: {{ .Values.docker.remoteTls.host | quote }}
- name: DOCKER_TLS_VERIFY
  value: "1"
- name: DOCKER_CERT_PATH
  value: /certs
{{- end }}
{{- end }}

{{/* The DinD daemon: privileged (it runs containers), nothing else in the pod is. */}}
{{- define "streamworker.dindContainer" -}}
- name: dind
  image: "{{ .Values.docker.dind.image.repository }}:{{ .Values.docker.dind.image.tag }}"
  imagePullPolicy: {{ .Values.docker.dind.image.pullPolicy }}
  {{- if .Values.docker.dind.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: DOCKER_TLS_CERTDIR
      value: /certs
  securityContext:
    privileged: true
    runAsNonRoot: false
    runAsUser: 0
    runAsGroup: 0
    readOnlyRootFilesystem: false
    seccompProfile:
      type: Unconfined
  startupProbe:
    exec:
      command: ["docker", "info"]
    periodSeconds: 2
    failureThreshold: 60
  livenessProbe:
    exec:
      command: ["docker", "info"]
    periodSeconds: 30
    timeoutSeconds: 10
  {{- with .Values.docker.dind.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: docker-certs
      mountPath: /certs
    - name: docker-data
      mountPath: /var/lib/docker
{{- end }}

{{/* STREAMWORKER_KAFKA_SASL_PASSWORD from its Secret (SASL protocols only): worker and gateway. */}}
{{- define "streamworker.kafkaPasswordEnv" -}}
{{- if hasPrefix "SASL_" .Values.kafka.security.protocol }}
- name: STREAMWORKER_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "streamworker.kafkaPasswordSecretName" . }}
      key: {{ include "streamworker.kafkaPasswordSecretKey" . }}
{{- end }}
{{- end }}

{{/* Settings that are secrets: never in a ConfigMap (config, gateway.config). */}}
{{- define "streamworker.secretSettings" -}}
{{- list "STREAMWORKER_DATABASE_URL" "STREAMWORKER_KAFKA_SASL_PASSWORD" "STREAMWORKER_GATEWAY_CALLBACK_SECRET" "STREAMWORKER_GATEWAY_TENANTS" "STREAMWORKER_GATEWAY_ADMIN_TOKENS" | toJson }}
{{- end }}

{{/* --- the gateway ----------------------------------------------------------------- */}}

{{- define "streamworker.gatewayFullname" -}}
{{- printf "%s-gateway" (include "streamworker.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "streamworker.gatewaySelectorLabels" -}}
{{ include "streamworker.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* The Secret holding tenants, admin tokens and the callback secret, if any. */}}
{{- define "streamworker.gatewaySecretName" -}}
{{- default (include "streamworker.gatewayFullname" .) .Values.gateway.auth.existingSecret }}
{{- end }}

{{/* Whether the chart creates the gateway's Secret (inline values given), checked once. */}}
{{- define "streamworker.gatewayInlineAuth" -}}
{{- $auth := .Values.gateway.auth }}
{{- $inline := or $auth.tenants $auth.adminTokens $auth.callbackSecret }}
{{- if and $auth.existingSecret $inline }}
{{- fail "gateway.auth: give existingSecret or the inline tenants/adminTokens/callbackSecret, not both" }}
{{- end }}
{{- if $inline }}true{{ end }}
{{- end }}

{{/* The gateway's secret settings: each key of an existing Secret (optional), or each inline value given. */}}
{{- define "streamworker.gatewayAuthEnv" -}}
{{- $auth := .Values.gateway.auth }}
{{- $name := include "streamworker.gatewaySecretName" . }}
{{- $inline := include "streamworker.gatewayInlineAuth" . }}
{{- range $pair := list (list "STREAMWORKER_GATEWAY_TENANTS" $auth.tenantsKey "tenants" $auth.tenants) (list "STREAMWORKER_GATEWAY_ADMIN_TOKENS" $auth.adminTokensKey "admin-tokens" $auth.adminTokens) (list "STREAMWORKER_GATEWAY_CALLBACK_SECRET" $auth.callbackSecretKey "callback-secret" $auth.callbackSecret) }}
{{- if $auth.existingSecret }}
- name: {{ index $pair 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ index $pair 1 }}
      optional: true
{{- else if and $inline (index $pair 3) }}
- name: {{ index $pair 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ index $pair 2 }}
{{- end }}
{{- end }}
{{- end }}
