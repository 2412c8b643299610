{{/*
Probes. exec: grpc.health.v1 from inside the pod over mutual TLS with the service's own
certificate (the kubelet's native gRPC probe cannot present one). grpc: the native probe,
for plaintext gRPC (trust.insecureDev). Liveness only asks that the server answers at all;
readiness asks for SERVING (a service reports NOT_SERVING while a part it needs is down).
*/}}
{{- define "keel.probeMode" -}}
{{- $mode := .Values.probes.mode -}}
{{- if eq $mode "auto" -}}
{{- if .Values.trust.insecureDev }}grpc{{ else }}exec{{ end -}}
{{- else -}}
{{ $mode }}
{{- end -}}
{{- end }}

{{- define "keel.healthExec" -}}
exec:
  command:
    - python
    - -c
    - >-
      import sys, grpc;
      from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g;
      d = '/etc/keel/trust/tls/'; n = '{{ .name }}';
      r = lambda p: open(d + p, 'rb').read();
      c = grpc.ssl_channel_credentials(r('ca.pem'), r(n + '.key'), r(n + '.pem'));
      s = g.HealthStub(grpc.secure_channel('localhost:{{ .values.grpcPort }}', c));
      st = s.Check(h.HealthCheckRequest(), timeout=4).status;
      {{- if eq .kind "live" }}
      sys.exit(0)
      {{- else }}
      sys.exit(0 if st == h.HealthCheckResponse.SERVING else 1)
      {{- end }}
{{- end }}

{{- define "keel.probes" -}}
{{- $p := .root.Values.probes -}}
{{- $mode := include "keel.probeMode" .root -}}
{{- $timing := dict "periodSeconds" $p.periodSeconds "timeoutSeconds" $p.timeoutSeconds -}}
startupProbe:
  tcpSocket: {port: grpc}
  periodSeconds: 2
  failureThreshold: {{ $p.startupFailureThreshold }}
livenessProbe:
{{- if eq $mode "exec" }}
  {{- include "keel.healthExec" (merge (dict "kind" "live") .) | nindent 2 }}
{{- else }}
  tcpSocket: {port: grpc}
{{- end }}
  {{- toYaml $timing | nindent 2 }}
  failureThreshold: {{ $p.failureThreshold }}
readinessProbe:
{{- if eq $mode "exec" }}
  {{- include "keel.healthExec" (merge (dict "kind" "ready") .) | nindent 2 }}
{{- else }}
  grpc: {port: {{ .values.grpcPort }}}
{{- end }}
  {{- toYaml $timing | nindent 2 }}
  failureThreshold: {{ $p.failureThreshold }}
{{- end }}

{{/*
The security context of one container. Every service gets the hardened default; the tool
gateway's sandbox mode changes exactly what the sandbox needs (values.yaml, docs/deploy.md).
*/}}
{{- define "keel.containerSecurity" -}}
{{- $sc := deepCopy .root.Values.containerSecurityContext -}}
{{- if eq .name "tool-gateway" -}}
{{- $mode := .values.sandbox.mode -}}
{{- if eq $mode "userns" -}}
{{- /* unshare(CLONE_NEWUSER|...), mount, pivot_root: refused by RuntimeDefault seccomp and
the runtime's AppArmor profile without CAP_SYS_ADMIN; the sandbox installs its own seccomp
filter on every snippet. The pod runs in its own user namespace (hostUsers: false). */ -}}
{{- $_ := set $sc "seccompProfile" (dict "type" "Unconfined") -}}
{{- $_ := set $sc "appArmorProfile" (dict "type" "Unconfined") -}}
{{- $_ := set $sc "procMount" "Unmasked" -}}
{{- else if eq $mode "sysadmin" -}}
{{- $_ := set $sc "capabilities" (dict "drop" (list "ALL") "add" (list "SYS_ADMIN")) -}}
{{- $_ := set $sc "appArmorProfile" (dict "type" "Unconfined") -}}
{{- end -}}
{{- end -}}
{{- toYaml $sc -}}
{{- end }}
