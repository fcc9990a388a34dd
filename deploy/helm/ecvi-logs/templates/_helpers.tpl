{{/* Labels of every object: the kustomize base's two, and Helm's own. */}}
{{- define "ecvi-logs.labels" -}}
app.kubernetes.io/name: ecvi-logs
app.kubernetes.io/part-of: ecvi
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "ecvi-logs.image" -}}
{{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The shipper config text: the override, or the backend's copy of the kustomize config. */}}
{{- define "ecvi-logs.config" -}}
{{- if .Values.config.override -}}
{{ .Values.config.override }}
{{- else -}}
{{- $path := printf "files/shipper-%s.yaml" .Values.backend -}}
{{- $text := .Files.Get $path -}}
{{- if not $text -}}
{{- fail (printf "backend %q has no config (%s); use loki, elasticsearch or cloudwatch" .Values.backend $path) -}}
{{- end -}}
{{ $text }}
{{- end -}}
{{- end }}

{{/* Environment of the jobs' containers and extra entries of the shipper's. */}}
{{- define "ecvi-logs.extraEnv" -}}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ecvi-logs.esCaMount" -}}
{{- if eq .Values.backend "elasticsearch" }}
- name: es-ca
  mountPath: /etc/ecvi-logs-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "ecvi-logs.esCaVolume" -}}
{{- if eq .Values.backend "elasticsearch" }}
- name: es-ca
  secret:
    secretName: {{ .Values.elasticsearch.caSecret }}
{{- end }}
{{- end }}
