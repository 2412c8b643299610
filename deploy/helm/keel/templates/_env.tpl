{{/*
The environment of one service: every variable is a real setting (tests/deploy/test_helm.py
checks each against the pydantic settings classes). Structured values are JSON, as
pydantic-settings reads them.
*/}}
{{- define "keel.env" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $c := $root.Values.common -}}
{{- $p := .prefix -}}
{{- $k := $root.Values.kafka -}}
- {name: {{ $p }}HOST, value: "0.0.0.0"}
- {name: {{ $p }}GRPC_PORT, value: {{ $v.grpcPort | quote }}}
- {name: {{ $p }}METRICS_PORT, value: {{ $v.metricsPort | quote }}}
- {name: {{ $p }}LOG_LEVEL, value: {{ $c.logLevel | quote }}}
- {name: {{ $p }}LOG_JSON, value: "true"}
- {name: {{ $p }}SHUTDOWN_GRACE_S, value: {{ $v.shutdownGraceS | default $c.shutdownGraceS | quote }}}
- {name: {{ $p }}DRAIN_TIMEOUT_S, value: {{ $v.drainTimeoutS | default $c.drainTimeoutS | quote }}}
- {name: {{ $p }}AUDIT_SYNC, value: {{ (hasKey $v "auditSync" | ternary $v.auditSync $c.auditSync) | quote }}}
{{- include "keel.kafkaEnv" (dict "root" $root "user" (include "keel.kafkaUser" .)) }}
{{- if $root.Values.trust.insecureDev }}
- {name: KEEL_TRUST_INSECURE_DEV, value: "true"}
{{- else }}
- {name: KEEL_TRUST_DIR, value: /etc/keel/trust}
- {name: KEEL_TRUST_TOKEN_ISSUER, value: {{ $root.Values.trust.tokenIssuer | quote }}}
- {name: KEEL_TRUST_TOKEN_AUDIENCE, value: {{ $root.Values.trust.tokenAudience | quote }}}
{{- if $root.Values.trust.tokenKeysSecret }}
- {name: KEEL_TRUST_TOKEN_KEYS, value: /etc/keel/token-keys/{{ $root.Values.trust.tokenKeysKey }}}
{{- end }}
{{- end }}
- {name: KEEL_TRACING_EXPORTER, value: {{ $root.Values.tracing.exporter | quote }}}
{{- if $root.Values.tracing.otlpEndpoint }}
- {name: KEEL_TRACING_OTLP_ENDPOINT, value: {{ $root.Values.tracing.otlpEndpoint | quote }}}
{{- end }}
{{- include (printf "keel.env.%s" .name) . }}
{{- range $key, $value := $v.settings }}
- name: {{ $p }}{{ upper $key }}
  value: {{ if or (kindIs "map" $value) (kindIs "slice" $value) }}{{ toJson $value | quote }}{{ else }}{{ $value | toString | quote }}{{ end }}
{{- end }}
{{- range $v.secretEnv }}
- name: {{ $p }}{{ upper .name }}
  valueFrom:
    secretKeyRef: {name: {{ .secret }}, key: {{ .key }}}
{{- end }}
{{- end }}

{{/* KEEL_KAFKA_*: shared by the services and the topic Job (as the admin). */}}
{{- define "keel.kafkaEnv" -}}
{{- $k := .root.Values.kafka }}
- {name: KEEL_KAFKA_BOOTSTRAP, value: {{ $k.bootstrap | quote }}}
- {name: KEEL_KAFKA_SECURITY_PROTOCOL, value: {{ $k.securityProtocol | quote }}}
- {name: KEEL_KAFKA_TOPIC_PARTITIONS, value: {{ $k.topicPartitions | quote }}}
- {name: KEEL_KAFKA_REPLICATION_FACTOR, value: {{ $k.replicationFactor | quote }}}
- {name: KEEL_KAFKA_CONNECT_TIMEOUT_S, value: {{ $k.connectTimeoutS | quote }}}
{{- if include "keel.kafkaSasl" .root }}
- {name: KEEL_KAFKA_SASL_MECHANISM, value: {{ $k.sasl.mechanism | quote }}}
- {name: KEEL_KAFKA_USERNAME, value: {{ .user | quote }}}
- {name: KEEL_KAFKA_PASSWORD_FILE, value: /etc/keel/kafka/password}
{{- end }}
{{- if and (include "keel.kafkaTls" .root) $k.tls.caSecret }}
- {name: KEEL_KAFKA_SSL_CA_FILE, value: /etc/keel/kafka/ca.pem}
{{- end }}
{{- if and (include "keel.kafkaTls" .root) $k.tls.clientCertSecretPrefix }}
- {name: KEEL_KAFKA_SSL_CERT_FILE, value: /etc/keel/kafka/tls.crt}
- {name: KEEL_KAFKA_SSL_KEY_FILE, value: /etc/keel/kafka/tls.key}
{{- end }}
{{- end }}

{{/* Per service: who it calls (by Service name = certificate identity) and its own files. */}}
{{- define "keel.env.agent-loop" -}}
{{- $s := .root.Values.services }}
- {name: KEEL_AGENT_LOOP_LLM_TARGET, value: "llm-gateway:{{ $s.llmGateway.grpcPort }}"}
- {name: KEEL_AGENT_LOOP_TOOL_TARGET, value: "tool-gateway:{{ $s.toolGateway.grpcPort }}"}
- {name: KEEL_AGENT_LOOP_MEMORY_TARGET, value: "memory:{{ $s.memory.grpcPort }}"}
{{- end }}

{{- define "keel.env.tool-gateway" -}}
{{- $s := .root.Values.services }}
- {name: KEEL_TOOL_GATEWAY_POLICY_TARGET, value: "policy:{{ $s.policy.grpcPort }}"}
- {name: KEEL_TOOL_GATEWAY_APPROVAL_TARGET, value: "approval:{{ $s.approval.grpcPort }}"}
- {name: KEEL_TOOL_GATEWAY_MEMORY__TARGET, value: "memory:{{ $s.memory.grpcPort }}"}
{{- if eq .values.sandbox.mode "off" }}
- {name: KEEL_TOOL_GATEWAY_SANDBOX__ALLOW_WITHOUT_ISOLATION, value: "false"}
{{- end }}
{{- end }}

{{- define "keel.env.policy" }}
- {name: KEEL_POLICY_POLICY_FILE, value: /etc/keel/policy}
- {name: KEEL_POLICY_RELOAD_INTERVAL_S, value: {{ .values.reloadIntervalS | quote }}}
{{- end }}

{{- define "keel.env.memory" -}}
{{- $m := .root.Values.milvus }}
- {name: KEEL_MEMORY_MILVUS_URI, value: {{ $m.uri | default "/data/milvus.db" | quote }}}
{{- if $m.tokenSecret }}
- name: KEEL_MEMORY_MILVUS_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $m.tokenSecret }}, key: {{ $m.tokenKey }}}
{{- end }}
{{- end }}

{{- define "keel.env.approval" -}}
{{- $a := .values }}
- {name: KEEL_APPROVAL_WEB_HOST, value: "0.0.0.0"}
- {name: KEEL_APPROVAL_WEB_PORT, value: {{ $a.webPort | quote }}}
- {name: KEEL_APPROVAL_WEB_ALLOWED_HOSTS, value: {{ toJson $a.webAllowedHosts | quote }}}
- {name: KEEL_APPROVAL_WEB_COOKIE_SECURE, value: {{ $a.webCookieSecure | quote }}}
{{- if $a.reviewerTokensSecret }}
- name: KEEL_APPROVAL_REVIEWER_TOKENS
  valueFrom:
    secretKeyRef: {name: {{ $a.reviewerTokensSecret }}, key: {{ $a.reviewerTokensKey }}}
{{- end }}
{{- end }}

{{- define "keel.env.llm-gateway" -}}
{{- end }}
