//! The ways into the cluster besides the relay's own Service: an Ingress for ingress-nginx, a
//! Gateway API TLSRoute, an OpenShift Route. Each points at the Service `wsproxy` and keeps
//! the browser's TLS going to the relay (passthrough), except an Ingress told to re-encrypt,
//! which terminates TLS with the proxy certificate itself. Console sessions last hours, so
//! every proxy in between gets timeouts of hours, not its default minute.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec, IngressTLS,
    ServiceBackendPort,
};
use serde_json::json;

use super::k8s::{meta, SECRET_NAME};
use super::NAME;
use crate::spec::{DeploySpec, IngressTls, IngressWay, TlsRouteWay};

/// How long a console may sit idle behind a proxy in between: 4 hours.
pub const IDLE_TIMEOUT_SECS: u32 = 4 * 3600;

/// The objects the spec's `expose` asks for (Ingress, TLSRoute, Route, in that order).
pub fn objects(spec: &DeploySpec) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    if let Some(way) = &spec.expose.ingress {
        out.push(serde_json::to_value(ingress(spec, way)).expect("k8s-openapi types serialize"));
    }
    if let Some(way) = &spec.expose.tls_route {
        out.push(tls_route(spec, way));
    }
    if spec.expose.openshift_route {
        out.push(openshift_route(spec));
    }
    out
}

/// An Ingress for ingress-nginx at proxyFqdn.
pub fn ingress(spec: &DeploySpec, way: &IngressWay) -> Ingress {
    let timeout = IDLE_TIMEOUT_SECS.to_string();
    let mut annotations = BTreeMap::from([
        // The relay speaks only TLS.
        ("nginx.ingress.kubernetes.io/backend-protocol".to_string(), "HTTPS".to_string()),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout".to_string(), timeout.clone()),
        ("nginx.ingress.kubernetes.io/proxy-send-timeout".to_string(), timeout),
    ]);
    if way.tls == IngressTls::Passthrough {
        annotations.insert("nginx.ingress.kubernetes.io/ssl-passthrough".into(), "true".into());
    }
    let mut metadata = meta(spec, NAME);
    metadata.annotations = Some(annotations);
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: Some(way.class_name.clone()),
            rules: Some(vec![IngressRule {
                host: Some(spec.proxy_fqdn.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: NAME.into(),
                                port: Some(ServiceBackendPort { name: Some("wss".into()), ..Default::default() }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            // Re-encrypting, ingress-nginx presents the proxy certificate from the relay's own
            // Secret (kubernetes.io/tls); passing through, the relay presents it.
            tls: Some(vec![IngressTLS { hosts: Some(vec![spec.proxy_fqdn.clone()]), secret_name: Some(SECRET_NAME.into()) }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Gateway API TLSRoute (v1): the Gateway's passthrough listener sends proxyFqdn's TLS
/// connections to the Service.
pub fn tls_route(spec: &DeploySpec, way: &TlsRouteWay) -> serde_json::Value {
    let mut parent = json!({ "name": way.gateway });
    if let Some(ns) = &way.gateway_namespace {
        parent["namespace"] = json!(ns);
    }
    if let Some(section) = &way.section_name {
        parent["sectionName"] = json!(section);
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "TLSRoute",
        "metadata": meta(spec, NAME),
        "spec": {
            "parentRefs": [parent],
            "hostnames": [spec.proxy_fqdn],
            "rules": [{ "backendRefs": [{ "name": NAME, "port": spec.port }] }],
        },
    })
}

/// An OpenShift Route (v1), TLS passthrough, with the router's timeout raised to hours.
pub fn openshift_route(spec: &DeploySpec) -> serde_json::Value {
    let mut metadata = serde_json::to_value(meta(spec, NAME)).expect("metadata serializes");
    metadata["annotations"] = json!({ "haproxy.router.openshift.io/timeout": format!("{}s", IDLE_TIMEOUT_SECS) });
    json!({
        "apiVersion": "route.openshift.io/v1",
        "kind": "Route",
        "metadata": metadata,
        "spec": {
            "host": spec.proxy_fqdn,
            "to": { "kind": "Service", "name": NAME, "weight": 100 },
            "port": { "targetPort": "wss" },
            "tls": { "termination": "passthrough", "insecureEdgeTerminationPolicy": "None" },
            "wildcardPolicy": "None",
        },
    })
}
