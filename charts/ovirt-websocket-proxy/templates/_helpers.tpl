{{/* Labels on every object: the spec's labels plus the standard ones (as render::labels). */}}
{{- define "wsproxy.labels" -}}
{{- $l := dict "app.kubernetes.io/name" "ovirt-websocket-proxy" "app.kubernetes.io/instance" "wsproxy" "app.kubernetes.io/managed-by" "wsproxyctl" -}}
{{- toYaml (merge $l (deepCopy (default dict .Values.labels))) -}}
{{- end -}}

{{- define "wsproxy.selector" -}}
app.kubernetes.io/instance: wsproxy
app.kubernetes.io/name: ovirt-websocket-proxy
{{- end -}}

{{/* The relay configuration, byte for byte as render::k8s::conf writes it. */}}
{{- define "wsproxy.conf" -}}
# Rendered by wsproxyctl from the deployment spec (oVirt ovirt-websocket-proxy format).
PROXY_HOST=*
PROXY_PORT={{ .Values.port }}
SSL_CERTIFICATE=/etc/wsproxy/certs/tls.crt
SSL_KEY=/etc/wsproxy/certs/tls.key
CERT_FOR_DATA_VERIFICATION=/etc/wsproxy/certs/engine.cer
SSL_ONLY=True
SSL_MIN_VERSION=TLSv1.2
{{ if .Values.targetAllow }}WSPROXY_TARGET_ALLOW={{ join "," .Values.targetAllow }}
{{ end }}{{ if .Values.targetCaPem }}WSPROXY_TARGET_CA=/etc/wsproxy/conf.d/target-ca.pem
{{ end }}{{ with .Values.replayStore }}{{ if .url }}WSPROXY_REPLAY_STORE={{ .url }}
{{ if .passwordSecret }}WSPROXY_REPLAY_STORE_PASSWORD_FILE=/etc/wsproxy/replay-store/password
{{ end }}{{ if .caSecret }}WSPROXY_REPLAY_STORE_CA=/etc/wsproxy/replay-store-ca/ca.crt
{{ end }}{{ if .failOpen }}WSPROXY_REPLAY_STORE_FAIL_OPEN=True
{{ end }}{{ end }}{{ end }}WSPROXY_LOG_FORMAT=json
WSPROXY_DRAIN_NOTICE=5
WSPROXY_SHUTDOWN_GRACE={{ .Values.drainSeconds }}
{{ end -}}

{{/* Single use across replicas needs a shared store, or the explicit per-replica choice (as spec.rs). */}}
{{- define "wsproxy.checkReplicas" -}}
{{- $store := default dict .Values.replayStore -}}
{{- if and (gt (int .Values.replicas) 1) (not $store.url) (not .Values.perReplicaSingleUse) -}}
{{- fail (printf "replicas: %d replicas without replayStore would each keep their own record of used tickets: a ticket used on one replica would open another console on each of the others. Set replayStore.url to a Redis or Valkey (docs/HA.md), use replicas: 1, or set perReplicaSingleUse: true to accept that" (int .Values.replicas)) -}}
{{- end -}}
{{- end -}}

{{/* Pulled only when absent (as render): a loaded local image is used as it is. */}}
{{- define "wsproxy.pullPolicy" -}}
IfNotPresent
{{- end -}}
