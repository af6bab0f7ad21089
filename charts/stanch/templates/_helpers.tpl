{{/*
Names are fixed, as in the kustomize base: the operator, its RBAC and admission policies refer to
each other by these names (the stanch-identity policy is checked by name, the peering object is
named in the ClusterRole), so one release per cluster.
*/}}

{{- define "stanch.labels" -}}
app.kubernetes.io/name: stanch
app.kubernetes.io/part-of: stanch
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The Deployment's selector: the same as the base's, so a kustomize install can move to Helm. */}}
{{- define "stanch.selectorLabels" -}}
app.kubernetes.io/name: stanch
app.kubernetes.io/component: operator
{{- end -}}

{{/*
A document of one of the base's files (files/ links to them): every document of the file whose kind
and name match, with the chart's labels merged over its own. Used for objects that must be
byte-for-byte the base's (CRDs, RBAC rules, admission policies).
*/}}
{{- define "stanch.fromBase" -}}
{{- $root := index . 0 -}}
{{- $file := index . 1 -}}
{{- $extraAnnotations := index . 2 -}}
{{- range $raw := regexSplit "(?m)^---[ \\t]*$" ($root.Files.Get $file) -1 }}
{{- $doc := fromYaml $raw }}
{{- if $doc.kind }}
{{- $meta := $doc.metadata }}
{{- $_ := set $meta "labels" (merge (dict) (fromYaml (include "stanch.labels" $root)) ($meta.labels | default dict)) }}
{{- if $extraAnnotations }}
{{- $_ := set $meta "annotations" (merge (dict) $extraAnnotations ($meta.annotations | default dict)) }}
{{- end }}
---
{{ toYaml $doc }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "stanch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The STANCH_* settings the stanch-config ConfigMap carries. */}}
{{- define "stanch.config" -}}
{{- $c := dict "STANCH_PROMETHEUS_URL" (required "prometheus.url: set the URL of the Prometheus that scrapes your workloads" .Values.prometheus.url) }}
{{- if and .Values.prometheus.headers (not .Values.prometheus.headersSecret.name) }}
{{- $lines := list }}
{{- range $k, $v := .Values.prometheus.headers }}
{{- $lines = append $lines (printf "%s: %s" $k $v) }}
{{- end }}
{{- $_ := set $c "STANCH_PROMETHEUS_HEADERS" (join "\n" $lines) }}
{{- end }}
{{- with .Values.prometheus.basicAuth.username }}{{ $_ := set $c "STANCH_PROMETHEUS_USERNAME" . }}{{ end }}
{{- if .Values.prometheus.insecureSkipTLSVerify }}{{ $_ := set $c "STANCH_PROMETHEUS_INSECURE_SKIP_TLS_VERIFY" "true" }}{{ end }}
{{- if .Values.alertmanagerReceiver.enabled }}
{{- $_ := set $c "STANCH_ALERTMANAGER_ADDRESS" (printf "0.0.0.0:%d" (int .Values.alertmanagerReceiver.port)) }}
{{- end }}
{{- with .Values.signals.preset }}{{ $_ := set $c "STANCH_SIGNAL_PRESET" . }}{{ end }}
{{- with .Values.signals.workloadLabel }}{{ $_ := set $c "STANCH_WORKLOAD_LABEL" . }}{{ end }}
{{- with .Values.notify.format }}{{ $_ := set $c "STANCH_NOTIFY_FORMAT" . }}{{ end }}
{{- if ne .Values.logLevel "INFO" }}{{ $_ := set $c "STANCH_LOG_LEVEL" .Values.logLevel }}{{ end }}
{{- range $k, $v := .Values.config }}
{{- if eq $k "STANCH_PRIORITY" }}{{ fail "config.STANCH_PRIORITY: equal priorities pause every replica; leave it unset (each replica derives its own)" }}{{ end }}
{{- $_ := set $c $k (toString $v) }}
{{- end }}
{{- toYaml $c }}
{{- end -}}
