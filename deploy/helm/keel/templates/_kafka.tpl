{{/* The Kafka client files of one principal: its password, the brokers' CA, a client cert. */}}
{{- define "keel.kafkaVolume" -}}
{{- $k := .root.Values.kafka -}}
{{- $sasl := include "keel.kafkaSasl" .root -}}
{{- $tls := include "keel.kafkaTls" .root -}}
{{- if include "keel.kafkaFiles" .root }}
- name: kafka
  projected:
    defaultMode: 0440
    sources:
      {{- if $sasl }}
      - secret:
          name: {{ .secret }}
          items: [{key: {{ $k.sasl.passwordKey }}, path: password}]
      {{- end }}
      {{- if and $tls $k.tls.caSecret }}
      - secret:
          name: {{ $k.tls.caSecret }}
          items: [{key: {{ $k.tls.caKey }}, path: ca.pem}]
      {{- end }}
      {{- if and $tls $k.tls.clientCertSecretPrefix }}
      - secret:
          name: {{ $k.tls.clientCertSecretPrefix }}{{ .name }}
          items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]
      {{- end }}
{{- end }}
{{- end }}

{{/* Whether pods get Kafka client files (/etc/keel/kafka) at all. */}}
{{- define "keel.kafkaFiles" -}}
{{- $k := .Values.kafka -}}
{{- if or (include "keel.kafkaSasl" .) (and (include "keel.kafkaTls" .) (or $k.tls.caSecret $k.tls.clientCertSecretPrefix)) }}true{{ end -}}
{{- end }}
