{{/* The chart's name, or nameOverride. */}}
{{- define "wsproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: fullnameOverride, else the release name, followed by the chart's name
     unless the release name already contains it (two releases never collide). */}}
{{- define "wsproxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "wsproxy.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "wsproxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object: the standard ones plus the values' labels (as render::labels,
     which writes managed-by wsproxyctl and neither helm.sh/chart nor the version). */}}
{{- define "wsproxy.labels" -}}
{{- $l := dict "helm.sh/chart" (include "wsproxy.chart" .) "app.kubernetes.io/name" (include "wsproxy.name" .) "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/version" .Chart.AppVersion "app.kubernetes.io/managed-by" .Release.Service -}}
{{- toYaml (merge $l (deepCopy (default dict .Values.labels))) -}}
{{- end -}}

{{- define "wsproxy.selector" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/name: {{ include "wsproxy.name" . }}
{{- end -}}

{{/* The image: repository, the tag (the chart's appVersion when neither tag nor digest is
     given) and the digest. */}}
{{- define "wsproxy.image" -}}
{{- $tag := .Values.image.tag -}}
{{- if and (not $tag) (not .Values.image.digest) -}}{{- $tag = .Chart.AppVersion -}}{{- end -}}
{{- .Values.image.repository -}}{{- if $tag -}}:{{ $tag }}{{- end -}}{{- if .Values.image.digest -}}@{{ .Values.image.digest }}{{- end -}}
{{- end -}}

{{/* The certificates' Secret: the existing one named in the values, or the chart's own. */}}
{{- define "wsproxy.certsSecret" -}}
{{- default (printf "%s-certs" (include "wsproxy.fullname" .)) .Values.certificates.existingSecret -}}
{{- end -}}

{{/* The relay configuration, byte for byte as render::k8s::conf writes it. */}}
{{- define "wsproxy.conf" -}}
# Rendered by wsproxyctl from the deployment spec (oVirt ovirt-websocket-proxy format).
PROXY_HOST=*
PROXY_PORT={{ .Values.port }}
SSL_CERTIFICATE=/etc/wsproxy/certs/tls.crt
SSL_KEY=/etc/wsproxy/certs/tls.key
CERT_FOR_DATA_VERIFICATION={{ if .Values.certificates.certManager.issuer }}/etc/wsproxy/conf.d{{ else }}/etc/wsproxy/certs{{ end }}/engine.cer
SSL_ONLY=True
SSL_MIN_VERSION=TLSv1.2
{{ if .Values.targetAllow }}WSPROXY_TARGET_ALLOW={{ join "," .Values.targetAllow }}
{{ end }}{{ if .Values.targetCaPem }}WSPROXY_TARGET_CA=/etc/wsproxy/conf.d/target-ca.pem
{{ end }}{{ if .Values.trustedProxies }}WSPROXY_TRUSTED_PROXIES={{ join "," .Values.trustedProxies }}
{{ end }}{{ if and .Values.proxyProtocol (ne (toString .Values.proxyProtocol) "off") }}WSPROXY_PROXY_PROTOCOL={{ .Values.proxyProtocol }}
{{ end }}{{ with .Values.replayStore }}{{ if .url }}WSPROXY_REPLAY_STORE={{ .url }}
{{ if .passwordSecret }}WSPROXY_REPLAY_STORE_PASSWORD_FILE=/etc/wsproxy/replay-store/password
{{ end }}{{ if .caSecret }}WSPROXY_REPLAY_STORE_CA=/etc/wsproxy/replay-store-ca/ca.crt
{{ end }}{{ if .failOpen }}WSPROXY_REPLAY_STORE_FAIL_OPEN=True
{{ end }}{{ end }}{{ end }}{{ if .Values.maxSessionSeconds }}WSPROXY_MAX_SESSION_SECONDS={{ .Values.maxSessionSeconds }}
{{ end }}{{ with .Values.admin }}{{ if .enabled }}WSPROXY_ADMIN_LISTEN=[::]:{{ .port }}
{{ if .clientCertificates }}WSPROXY_ADMIN_CLIENT_CA=/etc/wsproxy/certs/ca.crt
{{ end }}{{ if .tokenSecret }}WSPROXY_ADMIN_TOKEN_FILE=/etc/wsproxy/admin-token/token
{{ end }}{{ end }}{{ end }}WSPROXY_LOG_FORMAT=json
WSPROXY_DRAIN_NOTICE=5
WSPROXY_SHUTDOWN_GRACE={{ .Values.drainSeconds }}
{{ if .Values.metrics.enabled }}WSPROXY_METRICS_LISTEN=[::]:{{ .Values.metrics.port }}
{{ end }}{{ end -}}

{{/* The admin listener needs a way to tell who asks, and client certificates need the engine CA beside the relay (as spec.rs). */}}
{{- define "wsproxy.checkAdmin" -}}
{{- $a := .Values.admin -}}
{{- if $a.enabled -}}
{{- if and (not $a.clientCertificates) (not $a.tokenSecret) -}}
{{- fail "admin: no way to tell who asks: keep clientCertificates: true (certificates from `certs issue --client`), or give tokenSecret (Kubernetes)" -}}
{{- end -}}
{{- if and $a.clientCertificates .Values.certificates.certManager.issuer -}}
{{- fail "admin.clientCertificates: with certManager the engine CA is not deployed beside the relay: set clientCertificates: false and give tokenSecret" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Single use across replicas needs a shared store, or the explicit per-replica choice (as spec.rs). */}}
{{- define "wsproxy.checkReplicas" -}}
{{- $store := default dict .Values.replayStore -}}
{{- if and (gt (int .Values.replicas) 1) (not $store.url) (not .Values.perReplicaSingleUse) -}}
{{- fail (printf "replicas: %d replicas without replayStore would each keep their own record of used tickets: a ticket used on one replica would open another console on each of the others. Set replayStore.url to a Redis or Valkey (docs/HA.md), use replicas: 1, or set perReplicaSingleUse: true to accept that" (int .Values.replicas)) -}}
{{- end -}}
{{- end -}}
