{{/* The release's name prefix of every object. */}}
{{- define "bsv.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A service's name (its binary and its DNS label) from its values key: peerChannels -> peer-channels. */}}
{{- define "bsv.serviceName" -}}
{{- kebabcase . -}}
{{- end -}}

{{/* Labels of every object; `service` is set on a service's objects. */}}
{{- define "bsv.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ .ctx.Chart.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "bsv.selectorLabels" . }}
{{- end -}}

{{/* Labels that select a service's pods (or, without `service`, every pod of the release). */}}
{{- define "bsv.selectorLabels" -}}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .service }}
app.kubernetes.io/name: {{ .service }}
{{- end }}
{{- end -}}

{{/* The Secret the pods read: the operator's or the chart's. */}}
{{- define "bsv.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-secrets" (include "bsv.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* A service's image: its block's `image` over the shared one. */}}
{{- define "bsv.image" -}}
{{- $image := merge (deepCopy (.svc.image | default dict)) .ctx.Values.image -}}
{{- printf "%s:%s" $image.repository ($image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}

{{- define "bsv.pullPolicy" -}}
{{- $image := merge (deepCopy (.svc.image | default dict)) .ctx.Values.image -}}
{{- $image.pullPolicy -}}
{{- end -}}

{{/* One environment variable from the Secret. */}}
{{- define "bsv.secretVar" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "bsv.secretName" .ctx }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* The secrets each service needs, and only those (the gateway never sees the miner's key). */}}
{{- define "bsv.serviceEnv" -}}
{{- $ctx := .ctx -}}
{{ include "bsv.secretVar" (dict "ctx" $ctx "key" "INTERNAL_TOKEN") }}
{{- if .svc.database }}
{{ include "bsv.secretVar" (dict "ctx" $ctx "key" "DATABASE_URL") }}
{{- end }}
{{- if eq .name "gateway" }}
{{ include "bsv.secretVar" (dict "ctx" $ctx "key" "RESTADMIN_APIKEY") }}
{{ include "bsv.secretVar" (dict "ctx" $ctx "key" "IDENTITY_PROVIDERS" "optional" true) }}
{{- end }}
{{- if eq .name "mapi" }}
{{ include "bsv.secretVar" (dict "ctx" $ctx "key" "WIF_PRIVATEKEY" "optional" true) }}
{{ include "bsv.secretVar" (dict "ctx" $ctx "key" "MINERID_SERVER_AUTHENTICATION" "optional" true) }}
{{- end }}
{{- end -}}

{{/* The variable naming a service's URL (`indexer`'s is INDEXER_SERVICE_URL: INDEXER_URL is the
external indexer's, as in the reference). */}}
{{- define "bsv.urlVar" -}}
{{- if eq . "indexer" -}}INDEXER_SERVICE_URL{{- else -}}{{ printf "%s_URL" (snakecase . | upper) }}{{- end -}}
{{- end -}}

{{/* The in-cluster URL of a service. */}}
{{- define "bsv.serviceUrl" -}}
{{- printf "http://%s-%s:8080" (include "bsv.fullname" .ctx) .name -}}
{{- end -}}
