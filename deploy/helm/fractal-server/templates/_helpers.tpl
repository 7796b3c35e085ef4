{{/*
Names and labels, as `helm create` lays them out.
*/}}
{{- define "fractal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to leave room for the longest component suffix
("-temporal-ui", "-create-bucket") within the 63 characters of a DNS label.
*/}}
{{- define "fractal.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's resources: <fullname>-<component>. Call with (list . "api"). */}}
{{- define "fractal.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "fractal.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fractal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fractal.labels" -}}
helm.sh/chart: {{ include "fractal.chart" . }}
app.kubernetes.io/name: {{ include "fractal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fractal-server
{{- end }}

{{/* Labels of one component's resources. Call with (list . "api"). */}}
{{- define "fractal.componentLabels" -}}
{{ include "fractal.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Selector labels of one component; immutable once deployed. Call with (list . "api"). */}}
{{- define "fractal.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "fractal.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "fractal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fractal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fractal.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "repository:tag" of a third-party image block. */}}
{{- define "fractal.imageRef" -}}
{{- printf "%s:%s" .repository .tag }}
{{- end }}

{{/*
Where each credential comes from, in this order: an existingSecret you name; a value given
in values.yaml, which the chart keeps in the Secret <fullname>-given-credentials
(templates/secret.yaml); otherwise the Secret <fullname>-credentials, whose keys the
credentials Job generates once in the cluster (templates/credentials-job.yaml).
*/}}
{{- define "fractal.credentialsSecretName" -}}
{{- include "fractal.componentName" (list . "credentials") }}
{{- end }}

{{- define "fractal.givenSecretName" -}}
{{- include "fractal.componentName" (list . "given-credentials") }}
{{- end }}

{{/* The credentials generated in the cluster: "key:length" words, space separated. */}}
{{- define "fractal.generatedKeys" -}}
{{- $keys := list -}}
{{- if not (or .Values.app.jwt.existingSecret .Values.app.jwt.secret) }}
{{- $keys = append $keys "jwt-secret:48" }}
{{- end }}
{{- if and .Values.postgresql.enabled (not (or .Values.postgresql.existingSecret .Values.postgresql.password)) }}
{{- $keys = append $keys "postgresql-password:32" }}
{{- end }}
{{- if and .Values.redis.enabled (not (or .Values.redis.existingSecret .Values.redis.password)) }}
{{- $keys = append $keys "redis-password:32" }}
{{- end }}
{{- if and .Values.minio.enabled (not (or .Values.minio.existingSecret (and .Values.minio.accessKey .Values.minio.secretKey))) }}
{{- $keys = concat $keys (list "s3-access-key:20" "s3-secret-key:40") }}
{{- end }}
{{- join " " $keys }}
{{- end }}

{{/*
Container securityContext of the bundled third-party services: same hardening as the app
(non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp), read-only root.
*/}}
{{- define "fractal.backingSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.backingServices.readOnlyRootFilesystem }}
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod securityContext of a bundled service running as uid/gid (list . 999). */}}
{{- define "fractal.backingPodSecurityContext" -}}
{{- $id := index . 1 -}}
runAsNonRoot: true
runAsUser: {{ $id }}
runAsGroup: {{ $id }}
fsGroup: {{ $id }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* ------------------------------------------------------------------------------------
Addresses and credentials of the backing services: the bundled one when enabled, else the
external one from values. Each fails with a clear message when a required value is missing.
*/}}

{{- define "fractal.postgresql.host" -}}
{{- if .Values.postgresql.enabled }}
{{- include "fractal.componentName" (list . "postgresql") }}
{{- else }}
{{- required "postgresql.host is required when postgresql.enabled=false" .Values.postgresql.host }}
{{- end }}
{{- end }}

{{- define "fractal.postgresql.secretName" -}}
{{- if .Values.postgresql.existingSecret }}
{{- .Values.postgresql.existingSecret }}
{{- else if .Values.postgresql.password }}
{{- include "fractal.givenSecretName" . }}
{{- else if .Values.postgresql.enabled }}
{{- include "fractal.credentialsSecretName" . }}
{{- else }}
{{- fail "postgresql.existingSecret (or postgresql.password) is required when postgresql.enabled=false" }}
{{- end }}
{{- end }}

{{- define "fractal.postgresql.secretKey" -}}
{{- if .Values.postgresql.existingSecret }}
{{- .Values.postgresql.existingSecretPasswordKey }}
{{- else }}
{{- print "postgresql-password" }}
{{- end }}
{{- end }}

{{/* The SQLAlchemy URL, with the password left as a reference to $(DATABASE_PASSWORD). */}}
{{- define "fractal.databaseUrl" -}}
{{- $pg := .Values.postgresql -}}
{{- printf "postgresql+psycopg://%s:$(DATABASE_PASSWORD)@%s:%d/%s" $pg.username (include "fractal.postgresql.host" .) (int $pg.port) $pg.database }}
{{- with $pg.options }}?{{ . }}{{ end }}
{{- end }}

{{- define "fractal.redis.host" -}}
{{- if .Values.redis.enabled }}
{{- include "fractal.componentName" (list . "redis") }}
{{- else }}
{{- required "redis.host is required when redis.enabled=false" .Values.redis.host }}
{{- end }}
{{- end }}

{{/* Whether Redis has a password: always for the bundled one, optional for an external one. */}}
{{- define "fractal.redis.hasPassword" -}}
{{- if or .Values.redis.enabled .Values.redis.existingSecret .Values.redis.password }}true{{ end }}
{{- end }}

{{- define "fractal.redis.secretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else if .Values.redis.password }}
{{- include "fractal.givenSecretName" . }}
{{- else }}
{{- include "fractal.credentialsSecretName" . }}
{{- end }}
{{- end }}

{{- define "fractal.redis.secretKey" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecretPasswordKey }}
{{- else }}
{{- print "redis-password" }}
{{- end }}
{{- end }}

{{- define "fractal.redisUrl" -}}
{{- $scheme := ternary "rediss" "redis" .Values.redis.tls -}}
{{- $auth := ternary ":$(REDIS_PASSWORD)@" "" (eq (include "fractal.redis.hasPassword" .) "true") -}}
{{- printf "%s://%s%s:%d/%d" $scheme $auth (include "fractal.redis.host" .) (int .Values.redis.port) (int .Values.redis.db) }}
{{- end }}

{{- define "fractal.temporal.address" -}}
{{- if .Values.temporal.enabled }}
{{- printf "%s:%d" (include "fractal.componentName" (list . "temporal")) (int .Values.temporal.grpcPort) }}
{{- else }}
{{- required "temporal.address is required when temporal.enabled=false" .Values.temporal.address }}
{{- end }}
{{- end }}

{{- define "fractal.s3.endpoint" -}}
{{- if .Values.minio.enabled }}
{{- printf "%s:9000" (include "fractal.componentName" (list . "minio")) }}
{{- else }}
{{- required "minio.endpoint is required when minio.enabled=false" .Values.minio.endpoint }}
{{- end }}
{{- end }}

{{/* ":8080", or nothing when the gateway listens on the scheme's default port. */}}
{{- define "fractal.publicPortSuffix" -}}
{{- $port := int .Values.ingress.publicPort -}}
{{- if not (has $port (list 80 443)) }}:{{ $port }}{{ end }}
{{- end }}

{{- define "fractal.publicScheme" -}}
{{- ternary "https" "http" (gt (len .Values.ingress.tls) 0) }}
{{- end }}

{{/*
The browser-facing S3 endpoint that presigned URLs carry. Through the gateway it is a URL,
so its scheme (https with ingress.tls) is independent of FRACTAL_S3_SECURE, which the
in-cluster endpoint uses; the service reads both forms (fractal/storage.py).
*/}}
{{- define "fractal.s3.publicEndpoint" -}}
{{- if .Values.minio.publicEndpoint }}
{{- .Values.minio.publicEndpoint }}
{{- else if and .Values.minio.enabled .Values.ingress.enabled }}
{{- include "fractal.publicUrl" (list . .Values.ingress.hosts.s3) }}
{{- else }}
{{- include "fractal.s3.endpoint" . }}
{{- end }}
{{- end }}

{{- define "fractal.s3.secretName" -}}
{{- if .Values.minio.existingSecret }}
{{- .Values.minio.existingSecret }}
{{- else if and .Values.minio.accessKey .Values.minio.secretKey }}
{{- include "fractal.givenSecretName" . }}
{{- else if .Values.minio.enabled }}
{{- include "fractal.credentialsSecretName" . }}
{{- else }}
{{- fail "minio.existingSecret (or minio.accessKey and minio.secretKey) is required when minio.enabled=false" }}
{{- end }}
{{- end }}

{{- define "fractal.s3.accessKeyKey" -}}
{{- ternary .Values.minio.existingSecretAccessKeyKey "s3-access-key" (not (empty .Values.minio.existingSecret)) }}
{{- end }}

{{- define "fractal.s3.secretKeyKey" -}}
{{- ternary .Values.minio.existingSecretSecretKeyKey "s3-secret-key" (not (empty .Values.minio.existingSecret)) }}
{{- end }}

{{- define "fractal.jwt.secretName" -}}
{{- if .Values.app.jwt.existingSecret }}
{{- .Values.app.jwt.existingSecret }}
{{- else if .Values.app.jwt.secret }}
{{- include "fractal.givenSecretName" . }}
{{- else }}
{{- include "fractal.credentialsSecretName" . }}
{{- end }}
{{- end }}

{{- define "fractal.jwt.secretKey" -}}
{{- ternary .Values.app.jwt.existingSecretKey "jwt-secret" (not (empty .Values.app.jwt.existingSecret)) }}
{{- end }}

{{/* ------------------------------------------------------------------------------------
Environment of every application container (api, worker, migrate): the FRACTAL_* settings
of fractal/settings.py. Credentials only by secretKeyRef; the URLs that embed a password
reference it as $(VAR), which Kubernetes expands from the variable defined just before.
Inline rather than a ConfigMap, because the pre-install migration hook runs before any
ordinary resource of the release exists.
*/}}
{{- define "fractal.databaseEnv" -}}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "fractal.postgresql.secretName" . }}
      key: {{ include "fractal.postgresql.secretKey" . }}
- name: FRACTAL_DATABASE_URL
  value: {{ include "fractal.databaseUrl" . | quote }}
{{- end }}

{{- define "fractal.appEnv" -}}
{{ include "fractal.databaseEnv" . }}
{{- if eq (include "fractal.redis.hasPassword" .) "true" }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "fractal.redis.secretName" . }}
      key: {{ include "fractal.redis.secretKey" . }}
{{- end }}
- name: FRACTAL_REDIS_URL
  value: {{ include "fractal.redisUrl" . | quote }}
- name: FRACTAL_TEMPORAL_ADDRESS
  value: {{ include "fractal.temporal.address" . | quote }}
- name: FRACTAL_TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: FRACTAL_TEMPORAL_TASK_QUEUE
  value: {{ .Values.temporal.taskQueue | quote }}
- name: FRACTAL_STORAGE
  value: s3
- name: FRACTAL_S3_ENDPOINT
  value: {{ include "fractal.s3.endpoint" . | quote }}
- name: FRACTAL_S3_PUBLIC_ENDPOINT
  value: {{ include "fractal.s3.publicEndpoint" . | quote }}
- name: FRACTAL_S3_SECURE
  value: {{ .Values.minio.secure | quote }}
- name: FRACTAL_S3_REGION
  value: {{ .Values.minio.region | quote }}
- name: FRACTAL_S3_BUCKET
  value: {{ .Values.minio.bucket | quote }}
- name: FRACTAL_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "fractal.s3.secretName" . }}
      key: {{ include "fractal.s3.accessKeyKey" . }}
- name: FRACTAL_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "fractal.s3.secretName" . }}
      key: {{ include "fractal.s3.secretKeyKey" . }}
- name: FRACTAL_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "fractal.jwt.secretName" . }}
      key: {{ include "fractal.jwt.secretKey" . }}
{{- include "fractal.temporalTlsEnv" . }}
- name: FRACTAL_LOG_FORMAT
  value: {{ .Values.logs.format | quote }}
- name: FRACTAL_LOG_LEVEL
  value: {{ .Values.logs.level | quote }}
- name: FRACTAL_METRICS_HOST
  value: "0.0.0.0"
{{- with (include "fractal.otlpEndpoint" .) }}
- name: FRACTAL_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: FRACTAL_TRACE_SAMPLE_RATIO
  value: {{ $.Values.tracing.sampleRatio | quote }}
{{- end }}
{{- range $name, $value := .Values.app.settings }}
- name: {{ printf "FRACTAL_%s" (upper $name) }}
  value: {{ include "fractal.settingValue" $value | quote }}
{{- end }}
{{- with .Values.app.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Init container that waits for Postgres (mode "database": a connection succeeds) or for the
schema (mode "schema": Alembic has recorded a revision): `fractal wait-for-database` in the
app image. Call with (list . "schema").
*/}}
{{- define "fractal.waitContainer" -}}
{{- $root := index . 0 -}}
{{- $mode := index . 1 -}}
- name: wait-for-{{ $mode }}
  image: {{ include "fractal.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["fractal", "wait-for-database"]
  args:
    - --timeout={{ int $root.Values.waitTimeoutSeconds }}
    {{- if eq $mode "schema" }}
    - --schema
    {{- end }}
  env:
    {{- include "fractal.databaseEnv" $root | nindent 4 }}
  resources:
    {{- toYaml $root.Values.initResources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
{{- end }}

{{/* Environment of the mc containers: the alias "minio" with the keys from the Secret. */}}
{{- define "fractal.mcEnv" -}}
- name: S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "fractal.s3.secretName" . }}
      key: {{ include "fractal.s3.accessKeyKey" . }}
- name: S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "fractal.s3.secretName" . }}
      key: {{ include "fractal.s3.secretKeyKey" . }}
- name: MC_HOST_minio
  value: {{ printf "http://$(S3_ACCESS_KEY):$(S3_SECRET_KEY)@%s" (include "fractal.s3.endpoint" .) | quote }}
{{- end }}

{{/*
An Ingress for Traefik routing one host to one Service port. Call with
(list . "api" "api.localhost" "<service>" "<port name>"), and optionally a dict of
annotations of its own after the port name (merged over ingress.annotations).
*/}}
{{- define "fractal.ingress" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $host := index . 2 -}}
{{- $own := dict -}}
{{- if gt (len .) 5 }}{{ $own = index . 5 }}{{ end -}}
{{- $annotations := merge (dict) $own ($root.Values.ingress.annotations | default dict) -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "fractal.componentName" (list $root $component) }}
  labels:
    {{- include "fractal.componentLabels" (list $root $component) | nindent 4 }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  ingressClassName: {{ $root.Values.ingress.className }}
  {{- with $root.Values.ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    - host: {{ $host | quote }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {{ index . 3 }}
                port:
                  name: {{ index . 4 }}
{{- end }}

{{/* Browser-facing base URL of a gateway host. */}}
{{- define "fractal.publicUrl" -}}
{{- $root := index . 0 -}}
{{- printf "%s://%s%s" (include "fractal.publicScheme" $root) (index . 1) (include "fractal.publicPortSuffix" $root) }}
{{- end }}

{{/* ------------------------------------------------------------------------------------
Observability, Temporal TLS and the writable volumes of the application pods.
*/}}

{{/* Where traces go: tracing.otlpEndpoint, else the bundled Jaeger, else nothing. */}}
{{- define "fractal.otlpEndpoint" -}}
{{- if .Values.tracing.otlpEndpoint }}
{{- .Values.tracing.otlpEndpoint }}
{{- else if .Values.tracing.jaeger.enabled }}
{{- printf "http://%s:4318" (include "fractal.componentName" (list . "jaeger")) }}
{{- end }}
{{- end }}

{{- define "fractal.temporalTlsDir" -}}/etc/fractal/temporal-tls{{- end }}

{{/* FRACTAL_TEMPORAL_TLS* and FRACTAL_TEMPORAL_API_KEY, from the values and Secrets. */}}
{{- define "fractal.temporalTlsEnv" -}}
{{- $tls := .Values.temporal.tls }}
{{- if or $tls.enabled .Values.temporal.apiKey.existingSecret }}
- name: FRACTAL_TEMPORAL_TLS
  value: "true"
{{- end }}
{{- if $tls.existingSecret }}
{{- if $tls.caKey }}
- name: FRACTAL_TEMPORAL_TLS_SERVER_CA_FILE
  value: {{ printf "%s/ca.crt" (include "fractal.temporalTlsDir" .) | quote }}
{{- end }}
{{- if $tls.certKey }}
- name: FRACTAL_TEMPORAL_TLS_CLIENT_CERT_FILE
  value: {{ printf "%s/tls.crt" (include "fractal.temporalTlsDir" .) | quote }}
- name: FRACTAL_TEMPORAL_TLS_CLIENT_KEY_FILE
  value: {{ printf "%s/tls.key" (include "fractal.temporalTlsDir" .) | quote }}
{{- end }}
{{- end }}
{{- with $tls.serverName }}
- name: FRACTAL_TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- with .Values.temporal.apiKey.existingSecret }}
- name: FRACTAL_TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.temporal.apiKey.existingSecretKey }}
{{- end }}
{{- end }}

{{/* Volume mounts of the api and worker containers: scratch, Numba cache, Temporal TLS. */}}
{{- define "fractal.appVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: numba-cache
  mountPath: {{ .Values.app.numbaCacheDir }}
{{- if .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  mountPath: {{ include "fractal.temporalTlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "fractal.appVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.app.scratchSizeLimit }}
- name: numba-cache
  emptyDir:
    sizeLimit: 512Mi
{{- if .Values.temporal.tls.existingSecret }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporal.tls.existingSecret }}
    defaultMode: 0440
    items:
      {{- with .Values.temporal.tls.caKey }}
      - key: {{ . }}
        path: ca.crt
      {{- end }}
      {{- if .Values.temporal.tls.certKey }}
      - key: {{ .Values.temporal.tls.certKey }}
        path: tls.crt
      - key: {{ required "temporal.tls.keyKey is required with temporal.tls.certKey" .Values.temporal.tls.keyKey }}
        path: tls.key
      {{- end }}
{{- end }}
{{- end }}

{{/*
Init container that copies the kernels `fractal warmup` compiled into the image to the
writable emptyDir that the app container mounts over the same path (the root filesystem is
read-only; Numba writes there when it compiles for another CPU).
*/}}
{{- define "fractal.numbaCacheContainer" -}}
- name: numba-cache
  image: {{ include "fractal.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["cp", "-a", "{{ .Values.app.numbaCacheDir }}/.", "/numba-cache/"]
  resources:
    {{- toYaml .Values.initResources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: numba-cache
      mountPath: /numba-cache
{{- end }}

{{- define "fractal.worker.terminationGracePeriodSeconds" -}}
{{- add (int (ceil .Values.worker.shutdownTimeoutSeconds)) (int .Values.worker.shutdownMarginSeconds) }}
{{- end }}

{{/* Whether the workers ever run more than one replica (for their PodDisruptionBudget). */}}
{{- define "fractal.worker.multiple" -}}
{{- if .Values.worker.autoscaling.enabled }}
{{- if gt (int .Values.worker.autoscaling.minReplicas) 1 }}true{{ end }}
{{- else if gt (int .Values.worker.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* The migration Job's spec; its hash names the Job (templates/migrate-job.yaml). */}}
{{- define "fractal.migrateJobSpec" -}}
backoffLimit: {{ .Values.migrate.backoffLimit }}
activeDeadlineSeconds: {{ .Values.migrate.activeDeadlineSeconds }}
template:
  metadata:
    labels:
      {{- include "fractal.componentLabels" (list . "migrate") | nindent 6 }}
  spec:
    restartPolicy: Never
    serviceAccountName: {{ include "fractal.serviceAccountName" . }}
    automountServiceAccountToken: false
    enableServiceLinks: false
    {{- with .Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml .Values.podSecurityContext | nindent 6 }}
    # Do not spend the Job's retries on a database that is still starting.
    initContainers:
      {{- include "fractal.waitContainer" (list . "database") | nindent 6 }}
    containers:
      - name: migrate
        image: {{ include "fractal.image" . }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        args: ["migrate"]
        env:
          {{- include "fractal.databaseEnv" . | nindent 10 }}
          - name: FRACTAL_LOG_FORMAT
            value: {{ .Values.logs.format | quote }}
        resources:
          {{- toYaml .Values.migrate.resources | nindent 10 }}
        securityContext:
          {{- toYaml .Values.securityContext | nindent 10 }}
        volumeMounts:
          - name: tmp
            mountPath: /tmp
    volumes:
      - name: tmp
        emptyDir:
          sizeLimit: 64Mi
{{- end }}

{{/*
A NetworkPolicy (named <fullname>-<name>-ingress) letting `from` reach a component's
ports. Call with (list . "postgresql" "postgresql" (list "postgresql") (list "api" "worker")):
component, name, port names, and the release's components allowed in (empty: any source:
the gateway in its own namespace, Prometheus, browsers through the gateway). An optional
sixth element lists extra NetworkPolicyPeer entries.
*/}}
{{- define "fractal.networkPolicy" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $ports := index . 3 -}}
{{- $from := index . 4 -}}
{{- $extra := list -}}
{{- if gt (len .) 5 }}{{ $extra = index . 5 }}{{ end -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "fractal.componentName" (list $root (printf "%s-ingress" (index . 2))) }}
  labels:
    {{- include "fractal.componentLabels" (list $root $component) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "fractal.selectorLabels" (list $root $component) | nindent 6 }}
  policyTypes: ["Ingress"]
  ingress:
    - ports:
        {{- range $ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- if $from }}
      from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ $root.Release.Name }}
            matchExpressions:
              - key: app.kubernetes.io/component
                operator: In
                values:
                  {{- toYaml $from | nindent 18 }}
        {{- with $extra }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
{{- end }}

{{/* Metadata of the credentials Job's RBAC objects: hooks made before the Job. */}}
{{- define "fractal.credentialsRbacMetadata" -}}
name: {{ include "fractal.componentName" (list . "credentials") }}
labels:
  {{- include "fractal.componentLabels" (list . "credentials") | nindent 2 }}
annotations:
  helm.sh/hook: pre-install,pre-upgrade
  helm.sh/hook-weight: "-5"
  # Kept for the next upgrade; replaced by it.
  helm.sh/hook-delete-policy: before-hook-creation
{{- end }}

{{/* "true" when the Temporal Web UI gets an Ingress (off by default: see values.yaml). */}}
{{- define "fractal.temporalUi.routed" -}}
{{- if and .Values.ingress.enabled .Values.temporal.enabled .Values.ingress.temporalUi.enabled }}true{{ end }}
{{- end }}

{{- define "fractal.temporalUi.authName" -}}
{{- include "fractal.componentName" (list . "temporal-ui-auth") }}
{{- end }}

{{/*
The basic-auth Secret Traefik reads: existingSecret; else the password given in the values,
rendered into <fullname>-temporal-ui-given-auth (templates/temporal-ui-auth-secret.yaml);
else <fullname>-temporal-ui-auth, which the credentials Job creates in the cluster with a
generated password (never rendered: every render is the same).
*/}}
{{- define "fractal.temporalUi.authSecretName" -}}
{{- $auth := .Values.ingress.temporalUi.basicAuth }}
{{- if $auth.existingSecret }}
{{- $auth.existingSecret }}
{{- else if $auth.password }}
{{- include "fractal.componentName" (list . "temporal-ui-given-auth") }}
{{- else }}
{{- include "fractal.temporalUi.authName" . }}
{{- end }}
{{- end }}

{{/* "true" when the credentials Job generates the Temporal Web UI's password. */}}
{{- define "fractal.temporalUi.generatedAuth" -}}
{{- $auth := .Values.ingress.temporalUi.basicAuth }}
{{- if and (eq (include "fractal.temporalUi.routed" .) "true") $auth.enabled (not $auth.existingSecret) (not $auth.password) }}true{{ end }}
{{- end }}

{{/* "true" when there is anything for the credentials Job to generate. */}}
{{- define "fractal.credentialsJob" -}}
{{- if or (include "fractal.generatedKeys" .) (include "fractal.temporalUi.generatedAuth" .) }}true{{ end }}
{{- end }}

{{/* Bytes of a memory quantity: "2Gi", "1536Mi", "2G", "2147483648". */}}
{{- define "fractal.memoryBytes" -}}
{{- $quantity := toString . -}}
{{- $bytes := "" -}}
{{- range $suffix, $factor := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- if and (not $bytes) (hasSuffix $suffix $quantity) }}
{{- $bytes = mulf (trimSuffix $suffix $quantity | float64) $factor | int64 -}}
{{- end }}
{{- end }}
{{- default ($quantity | float64 | int64) $bytes }}
{{- end }}

{{/* Whole cores of a CPU quantity, rounded up like the worker's resourceFieldRef: "2", "1500m". */}}
{{- define "fractal.cpuCores" -}}
{{- $quantity := toString . -}}
{{- if hasSuffix "m" $quantity }}
{{- ceil (divf (trimSuffix "m" $quantity | float64) 1000) | int }}
{{- else }}
{{- ceil ($quantity | float64) | int }}
{{- end }}
{{- end }}

{{/*
What the API's admission needs to know of the workers (fractal/admission.py): the memory
of one worker and how many chunks it renders at once, from the worker's own limits, and
the proxies whose X-Forwarded-For it believes. A key of the same name in app.settings wins.
*/}}
{{- define "fractal.apiEnv" -}}
{{- if not (hasKey .Values.app.settings "worker_memory_bytes") }}
- name: FRACTAL_WORKER_MEMORY_BYTES
  value: {{ include "fractal.memoryBytes" .Values.worker.resources.limits.memory | quote }}
{{- end }}
{{- if not (hasKey .Values.app.settings "worker_activity_slots") }}
- name: FRACTAL_WORKER_ACTIVITY_SLOTS
  value: {{ include "fractal.cpuCores" .Values.worker.resources.limits.cpu | quote }}
{{- end }}
{{- if not (hasKey .Values.app.settings "trusted_proxies") }}
- name: FRACTAL_TRUSTED_PROXIES
  value: {{ toJson .Values.api.trustedProxies | quote }}
{{- end }}
{{- end }}

{{/*
One app.settings value as the service reads it from the environment: whole numbers without
an exponent (YAML numbers reach templates as floats: 123456789 would print 1.23456789e+08),
lists and maps as JSON, everything else as text.
*/}}
{{- define "fractal.settingValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}
{{- printf "%d" (int64 .) }}
{{- else if or (kindIs "slice" .) (kindIs "map" .) }}
{{- toJson . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}
