{{/*
The chart name, or nameOverride; at most 63 characters.
*/}}
{{- define "ordersync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, or <release>-<name> (just <release> when it already
contains the name); at most 63 characters (DNS label).
*/}}
{{- define "ordersync.fullname" -}}
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

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "ordersync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "ordersync.labels" -}}
helm.sh/chart: {{ include "ordersync.chart" . }}
{{ include "ordersync.selectorLabels" . }}
app.kubernetes.io/version: {{ include "ordersync.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: worker
app.kubernetes.io/part-of: ordersync
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: name and instance only, so they never change across upgrades.
*/}}
{{- define "ordersync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ordersync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "ordersync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ordersync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image tag: image.tag or the chart's appVersion.
*/}}
{{- define "ordersync.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The image reference, pinned by digest when one is given.
*/}}
{{- define "ordersync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "ordersync.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The Secret holding the credentials: existingSecret or the chart's own.
*/}}
{{- define "ordersync.secretName" -}}
{{- default (include "ordersync.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/*
"true" when a sessions file is mounted: the chart's Secret has sessions, or existingSecret names a key.
*/}}
{{- define "ordersync.sessionsEnabled" -}}
{{- if and .Values.secret.keys.sessions (or .Values.secret.existingSecret .Values.secret.sessions) }}true{{ end }}
{{- end }}

{{/*
"true" when Kafka SASL is configured.
*/}}
{{- define "ordersync.kafkaSASL" -}}
{{- if .Values.config.kafka.sasl.mechanism }}true{{ end }}
{{- end }}

{{/*
Paths inside the pod. Everything is one projected volume at /etc/ordersync, so no mount is nested in
another read-only one.
*/}}
{{- define "ordersync.configDir" -}}/etc/ordersync{{- end }}
{{- define "ordersync.sessionsPath" -}}/etc/ordersync/secrets/sessions.yaml{{- end }}
{{- define "ordersync.kafkaTLSDir" -}}/etc/ordersync/kafka-tls{{- end }}
{{- define "ordersync.redisTLSDir" -}}/etc/ordersync/redis-tls{{- end }}

{{/*
Whole seconds (rounded up) of a Go duration string such as "30s", "1m30s" or "1.5h".
*/}}
{{- define "ordersync.durationSeconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$" $d) }}
{{- fail (printf "%q is not a Go duration such as \"30s\" or \"1m30s\"" $d) }}
{{- end }}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range $part := regexFindAll "[0-9]+(\\.[0-9]*)?(ns|us|µs|ms|s|m|h)" $d -1 }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]*)?" $part }}
{{- $unit := trimPrefix $num $part }}
{{- $total = addf $total (mulf (float64 $num) (get $units $unit)) }}
{{- end }}
{{- ceil $total | int }}
{{- end }}

{{/*
The pod's terminationGracePeriodSeconds: the value, or worker.shutdown_timeout + 15s. Fails when it
would not exceed the shutdown timeout (Kubernetes would kill the worker before it commits).
*/}}
{{- define "ordersync.gracePeriodSeconds" -}}
{{- $shutdown := include "ordersync.durationSeconds" .Values.config.worker.shutdown_timeout | int }}
{{- if le $shutdown 0 }}
{{- fail "config.worker.shutdown_timeout must be greater than 0" }}
{{- end }}
{{- $grace := add $shutdown 15 }}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) }}
{{- $grace = int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- if le $grace $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than config.worker.shutdown_timeout (%s = %ds): Kubernetes would kill the worker before it finishes draining and commits" $grace .Values.config.worker.shutdown_timeout $shutdown) }}
{{- end }}
{{- $grace }}
{{- end }}

{{/*
The container port: the port of config.http.addr, which must listen on all interfaces.
*/}}
{{- define "ordersync.httpPort" -}}
{{- $addr := .Values.config.http.addr }}
{{- if not (regexMatch "^(0\\.0\\.0\\.0|\\[::\\])?:[0-9]+$" $addr) }}
{{- fail (printf "config.http.addr %q must listen on all interfaces, like \":8080\": the kubelet probes the pod IP" $addr) }}
{{- end }}
{{- $port := regexFind "[0-9]+$" $addr | int }}
{{- if or (lt $port 1) (gt $port 65535) }}
{{- fail (printf "config.http.addr %q: port must be 1-65535" $addr) }}
{{- end }}
{{- $port }}
{{- end }}

{{/*
The worker's ordersync.yaml: config from values plus the paths of the files the chart mounts. Secrets
are never part of it (values.schema.json has no key for them under config); they come from the
environment.
*/}}
{{- define "ordersync.configFile" -}}
{{- $cfg := deepCopy .Values.config }}
{{- if include "ordersync.sessionsEnabled" . }}
{{- $_ := set $cfg.top "sessions_file" (include "ordersync.sessionsPath" .) }}
{{- end }}
{{- if and $cfg.kafka.tls.enabled .Values.kafkaTLS.secretName }}
{{- if .Values.kafkaTLS.caKey }}
{{- $_ := set $cfg.kafka.tls "ca_file" (printf "%s/ca.crt" (include "ordersync.kafkaTLSDir" .)) }}
{{- end }}
{{- if .Values.kafkaTLS.certKey }}
{{- $_ := set $cfg.kafka.tls "cert_file" (printf "%s/tls.crt" (include "ordersync.kafkaTLSDir" .)) }}
{{- $_ := set $cfg.kafka.tls "key_file" (printf "%s/tls.key" (include "ordersync.kafkaTLSDir" .)) }}
{{- end }}
{{- end }}
{{- if and $cfg.redis.tls.enabled .Values.redisTLS.secretName .Values.redisTLS.caKey }}
{{- $_ := set $cfg.redis.tls "ca_file" (printf "%s/ca.crt" (include "ordersync.redisTLSDir" .)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
Checks across values that the schema cannot express; each failure names the values to change.
*/}}
{{- define "ordersync.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are both true: enable one. KEDA's admission webhook rejects a ScaledObject whose Deployment already has an HPA (KEDA creates its own)" }}
{{- end }}
{{- $enabled := 0 }}
{{- range $id, $ch := .Values.config.channels }}{{ if $ch.enabled }}{{ $enabled = add1 $enabled }}{{ end }}{{ end }}
{{- if eq $enabled 0 }}
{{- fail "config.channels: at least one channel must be enabled" }}
{{- end }}
{{- if not .Values.secret.existingSecret }}
{{- if not .Values.secret.appKey }}
{{- fail "secret.appKey is required (or set secret.existingSecret to a Secret you manage)" }}
{{- end }}
{{- if not .Values.secret.appSecret }}
{{- fail "secret.appSecret is required (or set secret.existingSecret to a Secret you manage)" }}
{{- end }}
{{- if and .Values.config.kafka.sasl.mechanism (not (and .Values.secret.kafkaSaslUsername .Values.secret.kafkaSaslPassword)) }}
{{- fail "config.kafka.sasl.mechanism is set: secret.kafkaSaslUsername and secret.kafkaSaslPassword are required" }}
{{- end }}
{{- end }}
{{- if and .Values.kafkaTLS.secretName (not .Values.config.kafka.tls.enabled) }}
{{- fail "kafkaTLS.secretName is set but config.kafka.tls.enabled is false" }}
{{- end }}
{{- if ne (empty .Values.kafkaTLS.certKey) (empty .Values.kafkaTLS.keyKey) }}
{{- fail "kafkaTLS.certKey and kafkaTLS.keyKey go together (mutual TLS)" }}
{{- end }}
{{- if and .Values.redisTLS.secretName (not .Values.config.redis.tls.enabled) }}
{{- fail "redisTLS.secretName is set but config.redis.tls.enabled is false" }}
{{- end }}
{{- if and .Values.pdb.enabled (include "ordersync.isSet" .Values.pdb.minAvailable) (include "ordersync.isSet" .Values.pdb.maxUnavailable) }}
{{- fail "pdb.minAvailable and pdb.maxUnavailable are both set: set one, the other \"\"" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (include "ordersync.kedaMaxReplicas" . | int)) }}
{{- fail (printf "keda.minReplicaCount (%d) exceeds the replica cap min(keda.maxReplicaCount, keda.partitions) = %s" (int .Values.keda.minReplicaCount) (include "ordersync.kedaMaxReplicas" .)) }}
{{- end }}
{{- $_ := include "ordersync.gracePeriodSeconds" . }}
{{- $_ := include "ordersync.httpPort" . }}
{{- end }}

{{/*
"true" when a value is set: neither null nor "" (0 is set).
*/}}
{{- define "ordersync.isSet" -}}
{{- if not (or (kindIs "invalid" .) (eq (toString .) "")) }}true{{ end }}
{{- end }}

{{/*
KEDA's replica cap: keda.maxReplicaCount, at most keda.partitions.
*/}}
{{- define "ordersync.kedaMaxReplicas" -}}
{{- min (int .Values.keda.maxReplicaCount) (int .Values.keda.partitions) }}
{{- end }}

{{/*
KEDA's names for a SASL mechanism.
*/}}
{{- define "ordersync.kedaSASL" -}}
{{- get (dict "plain" "plaintext" "scram-sha-256" "scram_sha256" "scram-sha-512" "scram_sha512") .Values.config.kafka.sasl.mechanism }}
{{- end }}

{{/*
"true" when the KEDA TriggerAuthentication has something to reference (SASL credentials or TLS files).
*/}}
{{- define "ordersync.kedaAuth" -}}
{{- if or (include "ordersync.kafkaSASL" .) (and .Values.config.kafka.tls.enabled .Values.kafkaTLS.secretName (or .Values.kafkaTLS.caKey .Values.kafkaTLS.certKey)) }}true{{ end }}
{{- end }}

{{/*
GOMEMLIMIT for the worker: goMemLimit when set, else 90% of resources.limits.memory in MiB (the Go
runtime then collects harder near the limit instead of the kernel killing the pod), else nothing.
Understands the Kubernetes quantity suffixes Ki Mi Gi Ti, k M G T and plain bytes.
*/}}
{{- define "ordersync.gomemlimit" -}}
{{- if .Values.goMemLimit -}}
{{- .Values.goMemLimit -}}
{{- else if and .Values.resources .Values.resources.limits .Values.resources.limits.memory -}}
{{- $q := toString .Values.resources.limits.memory -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $unit := trimPrefix $n $q -}}
{{- $perMiB := dict "" 0.00000095367431640625 "Ki" 0.0009765625 "Mi" 1.0 "Gi" 1024.0 "Ti" 1048576.0 "k" 0.0009536743164 "M" 0.95367431640625 "G" 953.67431640625 "T" 953674.31640625 -}}
{{- if or (not $n) (not (hasKey $perMiB $unit)) -}}
{{- fail (printf "resources.limits.memory %q: cannot derive GOMEMLIMIT from it; use a quantity such as 512Mi, or set goMemLimit" $q) -}}
{{- end -}}
{{- printf "%dMiB" (int64 (floor (mulf (float64 $n) (get $perMiB $unit) 0.9))) -}}
{{- end -}}
{{- end -}}
