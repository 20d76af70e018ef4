//! `deploy --target k8s`: server-side apply of the rendered objects with the field manager
//! `wsproxyctl` (so kubectl and other managers see who owns which field), an optional
//! server-side dry run, a wait for the Deployment to become available with progress, and the
//! Service's address. `undeploy` deletes by label. A namespace that exists is left exactly
//! as it is; one deploy creates is annotated, and only such a namespace is deleted.
//!
//! Objects are applied as dynamic objects from the JSON that `render` produces, so what is
//! applied is byte for byte what `render --target k8s` writes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kube::{Client, Config};

use crate::error::{Failure, Result};
use crate::output::Output;

pub const FIELD_MANAGER: &str = "wsproxyctl";

/// Set on a namespace deploy created (it did not exist): only such a namespace is ever
/// deleted by undeploy. An existing namespace is never changed, labelled or deleted.
pub const CREATED_ANNOTATION: &str = "wsproxyctl/created-namespace";
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=wsproxyctl,app.kubernetes.io/instance=wsproxy";

/// The kinds render produces, with their API coordinates and scope, in apply order.
pub const KINDS: &[(&str, &str, &str, &str, bool)] = &[
    // (group, version, kind, plural, namespaced)
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("", "v1", "Service", "services", true),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true),
    // Only with `metrics.serviceMonitor`; undeploy skips it where the CRD is absent (404).
    ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", true),
    // Only with `expose`; the two CRDs' kinds are skipped by undeploy where absent (404).
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    ("gateway.networking.k8s.io", "v1", "TLSRoute", "tlsroutes", true),
    ("route.openshift.io", "v1", "Route", "routes", true),
    // Only with `certManager` (its Secret is cert-manager's: undeploy leaves it to it).
    ("cert-manager.io", "v1", "Certificate", "certificates", true),
];

fn resource(kind: &str) -> Result<(ApiResource, bool)> {
    let (group, version, kind, plural, namespaced) =
        KINDS.iter().find(|k| k.2 == kind).ok_or_else(|| Failure::usage(format!("wsproxyctl does not apply objects of kind {kind}")))?;
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), *namespaced))
}

fn api(client: &Client, kind: &str, namespace: &str) -> Result<Api<DynamicObject>> {
    let (ar, namespaced) = resource(kind)?;
    Ok(if namespaced { Api::namespaced_with(client.clone(), namespace, &ar) } else { Api::all_with(client.clone(), &ar) })
}

fn kube_err(what: &str, e: kube::Error) -> Failure {
    match &e {
        kube::Error::Api(s) if s.code == 403 => Failure::environment(format!(
            "{what}: forbidden ({}): the kubeconfig user needs rights to apply these objects (namespace, secrets, deployments, ...)",
            s.message
        )),
        kube::Error::Api(s) => Failure::check(format!("{what}: the API server refused it: {} ({})", s.message, s.reason)),
        _ => Failure::environment(format!("{what}: {e}: is the cluster reachable with this kubeconfig/context?")),
    }
}

/// A client from the kubeconfig (KUBECONFIG or ~/.kube/config), optionally for a context.
pub async fn client(context: Option<&str>, kubeconfig: Option<&std::path::Path>) -> Result<Kube> {
    let options = KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
    let read = match kubeconfig {
        Some(path) => Some(Kubeconfig::read_from(path).map_err(|e| {
            Failure::usage(format!("--kubeconfig {}: {e}: name a kubeconfig file (kubectl config view --raw shows yours)", path.display()))
        })?),
        None => None,
    };
    let read = match read {
        Some(kc) => Ok(kc),
        None => Kubeconfig::read(),
    };
    let (config, namespace) = match read {
        Ok(kc) => {
            let namespace = context_namespace(&kc, context);
            let config =
                Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| Failure::environment(format!("kubeconfig: {e}")))?;
            (config, namespace)
        }
        Err(e) if context.is_none() => {
            let config = Config::incluster().map_err(|_| {
                Failure::environment(format!("no kubeconfig ({e}): set KUBECONFIG or create ~/.kube/config (kind does this)"))
            })?;
            let namespace = Some(config.default_namespace.clone());
            (config, namespace)
        }
        Err(e) => return Err(Failure::environment(format!("kubeconfig: {e}"))),
    };
    let client = Client::try_from(config).map_err(|e| Failure::environment(format!("cannot build a Kubernetes client: {e}")))?;
    Ok(Kube { client, namespace })
}

/// A client and the namespace its context names (kubectl's default namespace), if any.
pub struct Kube {
    pub client: Client,
    pub namespace: Option<String>,
}

/// The namespace the chosen context (or the current one) names, as kubectl would use it.
pub fn context_namespace(kc: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let name = context.map(str::to_string).or_else(|| kc.current_context.clone())?;
    kc.contexts.iter().find(|c| c.name == name)?.context.as_ref()?.namespace.clone().filter(|n| !n.is_empty())
}

/// Server-side apply every object; with `dry_run` the server validates without persisting.
pub async fn apply(client: &Client, namespace: &str, objects: &[serde_json::Value], dry_run: bool) -> Result<Vec<String>> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    let mut applied = Vec::new();
    for obj in objects {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("{kind}/{name}");
        let mut obj = obj.clone();
        if kind == "Namespace" {
            // Never take over a namespace someone else made: left exactly as it is.
            let existing = api(client, kind, namespace)?.get_opt(name).await.map_err(|e| kube_err(&format!("reading {what}"), e))?;
            if existing.is_some() {
                applied.push(format!("{what} (exists: left as it is)"));
                continue;
            }
            obj["metadata"]["annotations"][CREATED_ANNOTATION] = serde_json::Value::String("true".into());
        }
        tracing::debug!("server-side apply {what} in {namespace} (field manager {FIELD_MANAGER}, dry run {dry_run})");
        api(client, kind, namespace)?
            .patch(name, &params, &Patch::Apply(&obj))
            .await
            .map_err(|e| kube_err(&format!("applying {what}"), e))?;
        applied.push(what);
    }
    Ok(applied)
}

/// Wait until the Deployment has all replicas updated and available, printing progress.
pub async fn wait_available(client: &Client, namespace: &str, timeout: Duration, out: &Output) -> Result<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    // kube's wait: a watch on the Deployment, each change checked; the progress line is said
    // whenever it changes.
    let last = std::sync::Mutex::new(String::new());
    let available = |d: Option<&Deployment>| -> bool {
        let Some(d) = d else { return false };
        let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        let (ready, updated) = (status.available_replicas.unwrap_or(0), status.updated_replicas.unwrap_or(0));
        let progress = format!("{ready}/{wanted} available, {updated} updated");
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if *last != progress {
            out.step(&format!("    {progress}"));
            *last = progress;
        }
        let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        observed && updated >= wanted && ready >= wanted
    };
    let waited = tokio::time::timeout(timeout, await_condition(deployments, crate::render::NAME, available)).await;
    let progress = last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match waited {
        Ok(Ok(_)) => Ok(progress),
        Ok(Err(e)) => Err(Failure::environment(format!("watching Deployment/wsproxy: {e}: is the cluster reachable with this kubeconfig/context?"))),
        Err(_) => Err(Failure::check(format!(
            "Deployment/wsproxy not available after {} s ({progress}): `kubectl -n {namespace} describe pods -l app.kubernetes.io/name=ovirt-websocket-proxy` tells why \
             (image not loaded? probes failing?)",
            timeout.as_secs()
        ))),
    }
}

/// Where browsers reach the Service: the load balancer's address, the node port, or (for a
/// ClusterIP Service behind an Ingress, a TLSRoute or a Route) its cluster name.
pub async fn service_address(client: &Client, namespace: &str) -> Result<String> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let svc = services.get(crate::render::NAME).await.map_err(|e| kube_err("reading Service/wsproxy", e))?;
    let spec = svc.spec.unwrap_or_default();
    let first = spec.ports.as_ref().and_then(|p| p.first());
    let port = first.map_or(0, |p| p.port);
    let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).and_then(|i| i.into_iter().next());
    if let Some(ingress) = ingress {
        let host = ingress.hostname.or(ingress.ip).unwrap_or_default();
        return Ok(format!("{host}:{port} (load balancer)"));
    }
    match (spec.type_.as_deref(), first.and_then(|p| p.node_port)) {
        (Some("NodePort"), Some(np)) => Ok(format!("any node, port {np} (NodePort)")),
        (Some("ClusterIP"), _) => {
            Ok(format!("wsproxy.{namespace}.svc:{port} inside the cluster (ClusterIP: browsers come through the ways in you exposed)"))
        }
        _ => Ok(format!("load balancer address pending (port {port}): `kubectl -n {namespace} get svc wsproxy -w`")),
    }
}

/// Delete what deploy created (by label), the namespace last.
pub async fn undeploy(client: &Client, namespace: &str) -> Result<super::Removal> {
    let mut removal = super::Removal::default();
    let lp = ListParams::default().labels(SELECTOR);
    for (_, _, kind, _, namespaced) in KINDS.iter().rev() {
        if !namespaced {
            continue;
        }
        let api = api(client, kind, namespace)?;
        let list = match api.list(&lp).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(kube_err(&format!("listing {kind}"), e)),
        };
        for obj in list.items {
            let name = obj.metadata.name.unwrap_or_default();
            let result = api.delete(&name, &DeleteParams::default()).await.map(|_| ());
            removal.record(format!("{kind}/{name}"), result);
        }
    }
    let namespaces = api(client, "Namespace", namespace)?;
    if let Ok(ns) = namespaces.get(namespace).await {
        // Only a namespace deploy created; one that existed before is never deleted.
        let ours = ns.metadata.annotations.as_ref().and_then(|a| a.get(CREATED_ANNOTATION)).is_some_and(|v| v == "true");
        if ours {
            let result = namespaces.delete(namespace, &DeleteParams::default()).await.map(|_| ());
            removal.record(format!("Namespace/{namespace}"), result);
        }
    }
    Ok(removal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_namespace_is_the_contexts_as_kubectl_has_it() {
        let kc: Kubeconfig = serde_yaml::from_str(
            "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters: []\nusers: []\ncontexts:\n\
             - name: prod\n  context: {cluster: c, user: u, namespace: consoles}\n\
             - name: lab\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        assert_eq!(context_namespace(&kc, None).as_deref(), Some("consoles"), "the current context's");
        assert_eq!(context_namespace(&kc, Some("prod")).as_deref(), Some("consoles"));
        assert_eq!(context_namespace(&kc, Some("lab")), None, "a context without one: deploy's own default");
        assert_eq!(context_namespace(&kc, Some("missing")), None);
    }
}
