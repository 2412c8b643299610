{{/*
The six services, by identity. The identity is also the Kubernetes Service name: the gRPC
certificates (keel dev trust, cert-manager below) name it as a DNS name and the mutual-TLS
handshake checks it, so one Keel release per namespace and no name prefix on Services.
*/}}
{{- define "keel.catalog" -}}
agent-loop: {key: agentLoop, module: keel_agent_loop, prefix: KEEL_AGENT_LOOP_}
llm-gateway: {key: llmGateway, module: keel_llm_gateway, prefix: KEEL_LLM_GATEWAY_}
tool-gateway: {key: toolGateway, module: keel_tool_gateway, prefix: KEEL_TOOL_GATEWAY_}
policy: {key: policy, module: keel_policy, prefix: KEEL_POLICY_}
memory: {key: memory, module: keel_memory, prefix: KEEL_MEMORY_}
approval: {key: approval, module: keel_approval, prefix: KEEL_APPROVAL_}
{{- end }}

{{/* The enabled services as a list of dicts: name, key, module, prefix, values (merged over common). */}}
{{- define "keel.services" -}}
{{- $root := . -}}
{{- $out := list -}}
{{- range $name, $meta := fromYaml (include "keel.catalog" .) -}}
{{- $svc := index $root.Values.services $meta.key -}}
{{- if $svc.enabled -}}
{{- $out = append $out (dict "name" $name "key" $meta.key "module" $meta.module "prefix" $meta.prefix "values" $svc) -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "items" $out) -}}
{{- end }}

{{- define "keel.labels" -}}
app.kubernetes.io/part-of: keel
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- if .name }}
app.kubernetes.io/name: {{ .name }}
{{- end }}
{{- end }}

{{- define "keel.selector" -}}
app.kubernetes.io/part-of: keel
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .name }}
{{- end }}

{{/* The image: by digest when one is given (production pins digests), else by tag. */}}
{{- define "keel.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{ $img.repository }}@{{ $img.digest }}
{{- else -}}
{{ $img.repository }}:{{ $img.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The Kafka principal of one service (a Strimzi KafkaUser of that name under values-strimzi). */}}
{{- define "keel.kafkaUser" -}}
{{ .root.Values.kafka.sasl.userPrefix }}{{ .name }}
{{- end }}

{{- define "keel.kafkaSasl" -}}
{{- if has .Values.kafka.securityProtocol (list "SASL_SSL" "SASL_PLAINTEXT") }}true{{ end -}}
{{- end }}

{{- define "keel.kafkaTls" -}}
{{- if has .Values.kafka.securityProtocol (list "SASL_SSL" "SSL") }}true{{ end -}}
{{- end }}

{{/*
Seconds a pod gets between SIGTERM and SIGKILL: the preStop pause (endpoints drop the pod
first), then the service's own drain (gRPC grace, then Kafka handlers' drain; see
keel_core.runtime), then a margin for the audit flush and the producer's close.
*/}}
{{- define "keel.terminationGrace" -}}
{{- $v := .values -}}
{{- $c := .root.Values.common -}}
{{- $grace := $v.shutdownGraceS | default $c.shutdownGraceS -}}
{{- $drain := $v.drainTimeoutS | default $c.drainTimeoutS -}}
{{- addf $c.preStopSleepS $grace $drain $c.stopMarginS | ceil | int -}}
{{- end }}
