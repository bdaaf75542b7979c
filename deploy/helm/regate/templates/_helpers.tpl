{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "regate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name of every object. */}}
{{- define "regate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "regate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "regate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "regate.labels" -}}
{{ include "regate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "regate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "regate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "regate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Validate the values that templates cannot express as types. */}}
{{- define "regate.validate" -}}
{{- if not (has .Values.mode (list "sidecar" "standalone")) -}}
{{- fail (printf "mode: must be sidecar or standalone, not %q" .Values.mode) -}}
{{- end -}}
{{- if not (has .Values.policy.source (list "service" "configMap")) -}}
{{- fail (printf "policy.source: must be service or configMap, not %q" .Values.policy.source) -}}
{{- end -}}
{{- if and (eq .Values.policy.source "service") (not .Values.policy.service.url) -}}
{{- fail "policy.service.url: required when policy.source is service (the OPA bundle server URL)" -}}
{{- end -}}
{{- if and (eq .Values.policy.source "configMap") (not .Values.policy.configMap.existingConfigMap) (not .Values.policy.configMap.bundleBase64) -}}
{{- fail "policy.configMap: set bundleBase64 (base64 of the bundle .tar.gz) or existingConfigMap when policy.source is configMap" -}}
{{- end -}}
{{- if gt (len .Values.policy.configMap.bundleBase64) 1398100 -}}
{{- fail "policy.configMap.bundleBase64: the bundle exceeds the 1 MiB a ConfigMap can hold; serve it from a bundle server (policy.source: service)" -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") (not .Values.sidecar.containers) -}}
{{- fail "sidecar.containers: sidecar mode needs the application container(s) regate fronts" -}}
{{- end -}}
{{- if not (has .Values.monitoring.kind (list "" "PodMonitor" "ServiceMonitor")) -}}
{{- fail (printf "monitoring.kind: must be PodMonitor, ServiceMonitor or empty, not %q" .Values.monitoring.kind) -}}
{{- end -}}
{{- $c := .Values.config.regate -}}
{{- if and (not .Values.config.existingConfigMap) (hasKey $c "listen") -}}
{{- fail "config.regate.listen: set by the chart from ports.proxy / ports.admin; remove it" -}}
{{- end -}}
{{- if and (not .Values.config.existingConfigMap) (hasKey $c "policy") -}}
{{- fail "config.regate.policy: set by the chart from the policy.* values; remove it" -}}
{{- end -}}
{{- end -}}

{{/* regate.yaml: the user's config plus listen and policy from the chart's values. */}}
{{- define "regate.config" -}}
{{- $policy := dict "default_entrypoint" .Values.policy.default_entrypoint "timezone" .Values.policy.timezone -}}
{{- if eq .Values.policy.source "service" -}}
{{- $_ := set $policy "service" (dict "url" .Values.policy.service.url "polling" .Values.policy.service.polling "headers" .Values.policy.service.headers) -}}
{{- else -}}
{{- $_ := set $policy "bundle" (printf "/etc/regate/policy/%s" .Values.policy.configMap.key) -}}
{{- end -}}
{{- if .Values.policy.signing -}}
{{- $_ := set $policy "signing" .Values.policy.signing -}}
{{- end -}}
{{- $listen := dict "proxy" (dict "host" "0.0.0.0" "port" (int .Values.ports.proxy)) "admin" (dict "host" "0.0.0.0" "port" (int .Values.ports.admin)) -}}
{{- $config := merge (dict "listen" $listen "policy" $policy) (deepCopy .Values.config.regate) -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "regate.configMapName" -}}
{{- default (printf "%s-config" (include "regate.fullname" .)) .Values.config.existingConfigMap -}}
{{- end -}}

{{- define "regate.bundleConfigMapName" -}}
{{- default (printf "%s-bundle" (include "regate.fullname" .)) .Values.policy.configMap.existingConfigMap -}}
{{- end -}}
