{{/* Labels on every object: the spec's labels plus the standard ones (as render::labels). */}}
{{- define "wsproxy.labels" -}}
{{- $l := dict "app.kubernetes.io/name" "ovirt-websocket-proxy" "app.kubernetes.io/instance" "wsproxy" "app.kubernetes.io/managed-by" "wsproxyctl" -}}
{{- toYaml (merge $l (deepCopy (default dict .Values.labels))) -}}
{{- end -}}

{{- define "wsproxy.selector" -}}
app.kubernetes.io/instance: wsproxy
app.kubernetes.io/name: ovirt-websocket-proxy
{{- end -}}

{{/* The relay configuration, byte for byte as render::relay_conf writes it. */}}
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
{{ end }}WSPROXY_LOG_FORMAT=json
{{ end -}}

{{/* Registry images are pulled; local-only names (localhost/...) must already be loaded. */}}
{{- define "wsproxy.pullPolicy" -}}
{{- $first := splitList "/" .Values.image | first -}}
{{- if and (contains "/" .Values.image) (ne $first "localhost") (or (contains "." $first) (contains ":" $first)) -}}
IfNotPresent
{{- else -}}
Never
{{- end -}}
{{- end -}}
