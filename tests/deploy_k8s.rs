//! `deploy --target k8s`, undeploy, logs and status against a scripted API server: each test
//! is one scenario, the script of what the cluster is asked and answers
//! ([`scripted_api::Step`]), the operation, and what it reported. The script asserts every
//! request: server-side apply with the field manager, forced, the dry-run flag, the exact
//! rendered objects; the wait on the Deployment's status; the Service address; undeploy
//! deleting by label. (A live cluster cannot run on these machines; the kind suite in
//! tests/kind.rs covers that on runners that have kind.)

mod common;
#[path = "common/scripted_api.rs"]
mod scripted_api;

use std::time::Duration;

use scripted_api::{Namespace, Step, NAMESPACE};
use serde_json::{json, Value};
use wsproxyctl::deploy::{self, DeployOptions, K8sOptions};
use wsproxyctl::output::{Format, Output};
use wsproxyctl::pki::bundle::Bundle;
use wsproxyctl::spec::{DeploySpec, Overrides};

/// Two replicas sharing a replay store, in the namespace the script serves.
fn setup() -> (tempfile::TempDir, DeploySpec, Bundle) {
    let common::EngineSide { dir, certs, .. } = common::engine_side();
    let spec = DeploySpec::load(
        None,
        &Overrides {
            proxy_fqdn: Some("proxy.example.com".into()),
            certs: Some(certs.clone()),
            namespace: Some(NAMESPACE.into()),
            replicas: Some(2),
            replay_store: Some("redis://valkey.consoles.svc:6379".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let bundle = Bundle::load(&certs).unwrap();
    (dir, spec, bundle)
}

/// Deploy `spec` with `k8s` against `client` (no verification: no relay answers here).
async fn deploy_with(client: &kube::Client, spec: &DeploySpec, k8s: K8sOptions) -> wsproxyctl::error::Result<deploy::DeployReport> {
    let opts = DeployOptions { no_verify: true, ..Default::default() };
    deploy::to_kubernetes_with(client, spec, &opts, &k8s, &Output::new(Format::Text, true, false)).await
}

fn dry_run() -> K8sOptions {
    K8sOptions { dry_run: true, timeout: Duration::from_secs(5), ..Default::default() }
}

#[tokio::test]
async fn apply_waits_for_rollout_and_reports_the_service() {
    let (_dir, spec, bundle) = setup();
    let objects = wsproxyctl::render::k8s::objects(&spec, Some(&bundle));
    let (client, api) = scripted_api::play(vec![
        Step::Apply { objects, dry_run: false, namespace: Namespace::Absent },
        Step::Rollout { replicas: 2 },
        Step::LoadBalancer { ip: "192.0.2.10", port: 6100 },
    ]);
    let report = deploy_with(&client, &spec, K8sOptions { timeout: Duration::from_secs(30), ..Default::default() }).await.unwrap();
    api.await.unwrap();
    let steps: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps[2], "wait for Deployment/wsproxy");
    assert_eq!(report.steps[3].detail, "192.0.2.10:6100 (load balancer)");
    assert!(report.engine[0].contains("WebSocketProxy=proxy.example.com:6100"));
}

#[tokio::test]
async fn dry_run_sends_dry_run_and_stops() {
    let (_dir, spec, bundle) = setup();
    let objects = wsproxyctl::render::k8s::objects(&spec, Some(&bundle));
    let (client, api) = scripted_api::play(vec![Step::Apply { objects, dry_run: true, namespace: Namespace::Absent }, Step::Quiet]);
    let report = deploy_with(&client, &spec, dry_run()).await.unwrap();
    api.await.unwrap();
    assert!(report.engine[0].contains("dry run"), "{:?}", report.engine);
}

/// With certManager, deploy applies a Certificate instead of a Secret of the key (none is
/// read: the certificate directory needs only engine.cer and the issuer's CA).
#[tokio::test]
async fn cert_manager_deploys_a_certificate_and_no_key() {
    let (_dir, mut spec, _bundle) = setup();
    spec.cert_manager = Some(wsproxyctl::spec::CertManager { issuer: "consoles-ca".into(), issuer_kind: Default::default() });
    spec.engine_cer_pem = Some(std::fs::read_to_string(spec.certs.join("engine.cer")).unwrap());
    let objects = wsproxyctl::render::k8s::objects(&spec, None);
    let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"Certificate") && !kinds.contains(&"Secret"), "{kinds:?}");
    let (client, api) = scripted_api::play(vec![Step::Apply { objects, dry_run: true, namespace: Namespace::Absent }, Step::Quiet]);
    let report = deploy_with(&client, &spec, dry_run()).await.unwrap();
    api.await.unwrap();
    assert!(report.steps.iter().all(|s| s.name != "check certificates"), "no key to check: {:?}", report.steps);
}

#[tokio::test]
async fn refusals_and_timeouts_say_what_to_do() {
    let (_dir, spec, _bundle) = setup();
    let (client, api) = scripted_api::play(vec![Step::Refuse {
        code: 403,
        reason: "Forbidden",
        message: "namespaces is forbidden: User \"dev\" cannot patch resource",
    }]);
    let err = deploy_with(&client, &spec, K8sOptions::default()).await.unwrap_err().to_string();
    api.await.unwrap();
    assert!(err.contains("forbidden") && err.contains("rights"), "{err}");
}

/// Undeploy lists by label and deletes what it finds, the namespace deploy created last; a
/// removal the API refuses is reported as failed, never as removed.
#[tokio::test]
async fn undeploy_deletes_by_label() {
    let (client, api) = scripted_api::play(vec![Step::Undeploy {
        listed: vec![("deployments", "wsproxy-obj"), ("secrets", "wsproxy-obj")],
        forbidden: vec!["secrets"],
        namespace: Namespace::CreatedByDeploy,
    }]);
    let removed = deploy::k8s::undeploy(&client, NAMESPACE).await.unwrap();
    let played = api.await.unwrap();
    assert_eq!(removed.removed, ["Deployment/wsproxy-obj", "Namespace/consoles"]);
    assert_eq!(removed.failed.len(), 1, "{:?}", removed.failed);
    assert!(removed.failed[0].starts_with("Secret/wsproxy-obj: ") && removed.failed[0].contains("forbidden"), "{:?}", removed.failed);
    assert!(removed.to_string().contains("could NOT remove Secret/wsproxy-obj"), "{}", removed);
    assert_eq!(played.deleted.len(), 3, "{:?}", played.deleted);
}

/// A namespace that existed before deploy (holding someone else's ConfigMap, which carries no
/// label of ours and so is never listed) is never applied to, labelled or deleted: deploy
/// leaves it as it is, undeploy deletes only deploy's objects.
#[tokio::test]
async fn an_existing_namespace_and_its_foreign_objects_survive_deploy_and_undeploy() {
    let (_dir, spec, bundle) = setup();
    let objects = wsproxyctl::render::k8s::objects(&spec, Some(&bundle));
    let (client, api) = scripted_api::play(vec![
        Step::Apply { objects, dry_run: true, namespace: Namespace::Existing },
        Step::Undeploy { listed: vec![("deployments", "wsproxy")], forbidden: vec![], namespace: Namespace::Existing },
    ]);
    deploy_with(&client, &spec, K8sOptions { dry_run: true, timeout: Duration::from_secs(30), ..Default::default() }).await.unwrap();
    let removed = deploy::k8s::undeploy(&client, NAMESPACE).await.unwrap();
    let played = api.await.unwrap();
    assert_eq!(played.deleted, ["/apis/apps/v1/namespaces/consoles/deployments/wsproxy"]);
    assert_eq!(removed.removed, ["Deployment/wsproxy"]);
}

/// `logs --target k8s`: every relay pod's log, each line prefixed with its pod, `--since` sent
/// as sinceSeconds, only the relay's container read.
#[tokio::test]
async fn logs_read_every_relay_pod() {
    let started = "2026-12-06T10:00:00Z";
    let (client, api) = scripted_api::play(vec![
        Step::Pods(vec![scripted_api::pod("wsproxy-a", started, 0), scripted_api::pod("wsproxy-b", started, 0)]),
        Step::Logs { pods: vec!["wsproxy-a", "wsproxy-b"], since_seconds: 600 },
    ]);
    let mut out = Vec::new();
    let opts = deploy::logs::LogsOptions { follow: false, since: Some(Duration::from_secs(600)) };
    deploy::logs::kubernetes(&client, NAMESPACE, &opts, &mut out).await.unwrap();
    api.await.unwrap();
    let text = String::from_utf8(out).unwrap();
    for name in ["wsproxy-a", "wsproxy-b"] {
        for line in scripted_api::log_of(name).lines() {
            assert!(text.contains(&format!("[{name}] {line}\n")), "{text}");
        }
    }
}

/// Deployment/wsproxy with `ready` of 2 replicas of quay.io/example/wsproxy:1.2.
fn relay_deployment(ready: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wsproxy", "namespace": NAMESPACE},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app.kubernetes.io/name": "ovirt-websocket-proxy"}},
                 "template": {"metadata": {}, "spec": {"containers": [{"name": "wsproxy", "image": "quay.io/example/wsproxy:1.2"}]}}},
        "status": {"readyReplicas": ready}
    })
}

/// `status --target k8s`: replicas ready, the image, restarts summed over the pods, the oldest
/// pod's start; a missing Deployment is a failed check naming what to do.
#[tokio::test]
async fn status_reports_readiness_image_and_restarts() {
    let (client, api) = scripted_api::play(vec![
        Step::Deployment(Some(relay_deployment(1))),
        Step::Pods(vec![scripted_api::pod("p", "2026-12-06T10:00:00Z", 2), scripted_api::pod("q", "2026-12-05T09:00:00Z", 1)]),
        Step::Deployment(None),
    ]);
    let s = deploy::status::kubernetes(&client, NAMESPACE, None).await.unwrap();
    assert_eq!((s.mode.as_str(), s.running, s.restarts), ("1/2 ready", true, 3), "{s:?}");
    assert_eq!(s.image.as_deref(), Some("quay.io/example/wsproxy:1.2"));
    assert!(s.started.as_deref().is_some_and(|t| t.starts_with("2026-12-05")), "the oldest pod's start: {s:?}");
    assert!(!s.ok && s.problems[0].contains("1 of 2 replicas ready"), "{s:?}");
    let gone = deploy::status::kubernetes(&client, NAMESPACE, None).await.unwrap();
    assert!(!gone.ok && gone.problems[0].contains("deploy --target k8s"), "{gone:?}");
    api.await.unwrap();
}
