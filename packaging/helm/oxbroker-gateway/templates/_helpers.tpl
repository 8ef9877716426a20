{{/* The name of every object of the release. */}}
{{- define "oxbroker-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels that select the release's pods. */}}
{{- define "oxbroker-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "oxbroker-gateway.labels" -}}
{{ include "oxbroker-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* "true" when the replicas share a Redis registry. */}}
{{- define "oxbroker-gateway.redis" -}}
{{- if eq (dig "registry" "type" "memory" .Values.config) "redis" }}true{{ end -}}
{{- end -}}

{{/* The name of the Secret holding config.yaml. */}}
{{- define "oxbroker-gateway.configSecret" -}}
{{- .Values.existingConfigSecret | default (printf "%s-config" (include "oxbroker-gateway.fullname" .)) -}}
{{- end -}}

{{/*
The gateway's config: .Values.config with the listen addresses and file
paths of this chart. listen.admin is on every address, not 127.0.0.1, so
that the kubelet's probes reach it; the status page there needs admin.auth,
so without config.admin it is off (admin.page: false).
*/}}
{{- define "oxbroker-gateway.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- if not (hasKey $cfg "admin") -}}
{{- $_ := set $cfg "admin" (dict "page" false) -}}
{{- end -}}
{{- $listen := dict "tunnel" (printf ":%v" .Values.ports.tunnel) "api" (printf ":%v" .Values.ports.api) "admin" (printf ":%v" .Values.ports.admin) -}}
{{- $_ := set $cfg "tls" (dict "cert_file" "/etc/oxbroker-gateway/tls/tls.crt" "key_file" "/etc/oxbroker-gateway/tls/tls.key" "api_tls" .Values.tls.apiTLS) -}}
{{- if include "oxbroker-gateway.redis" . -}}
{{- $_ := set $listen "internal" (printf ":%v" .Values.ports.internal) -}}
{{- $_ := set $cfg "cluster" (dict "secret_file" "/etc/oxbroker-gateway/cluster/cluster.secret") -}}
{{- end -}}
{{- $_ := set $cfg "listen" $listen -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Refuses values that would deploy a gateway that cannot work. */}}
{{- define "oxbroker-gateway.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (include "oxbroker-gateway.redis" .)) -}}
{{- fail "replicaCount > 1 needs config.registry.type: redis: with the memory registry a replica knows only the agents connected to it" -}}
{{- end -}}
{{- if and (include "oxbroker-gateway.redis" .) (not .Values.cluster.secretName) -}}
{{- fail "config.registry.type: redis needs cluster.secretName, a Secret with the key cluster.secret" -}}
{{- end -}}
{{- if not .Values.tls.secretName -}}
{{- fail "tls.secretName is required: the tunnel is TLS (and QUIC) only" -}}
{{- end -}}
{{- end -}}
