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

{{/* The access mode, checked once. */}}
{{- define "streamworker.dockerMode" -}}
{{- $mode := .Values.docker.mode }}
{{- if not (has $mode (list "socket" "dind" "remoteTls")) }}
{{- fail (printf "docker.mode must be socket, dind or remoteTls (got %q)" $mode) }}
{{- end }}
{{- $mode }}
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
