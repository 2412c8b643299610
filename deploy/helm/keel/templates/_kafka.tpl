{{/* The Kafka client files of one principal: its password, the brokers' CA, a client cert. */}}
{{- define "keel.kafkaVolume" -}}
{{- $k := .root.Values.kafka -}}
{{- $sasl := include "keel.kafkaSasl" .root -}}
{{- $tls := include "keel.kafkaTls" .root -}}
{{- if or $sasl (and $tls (or $k.tls.caSecret $k.tls.clientCertSecretPrefix)) }}
- name: kafka
  projected:
    defaultMode: 0440
    sources:
      {{- if $sasl }}
      - secret:
          name: {{ .user }}
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
