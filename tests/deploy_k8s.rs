//! `deploy --target k8s` against a scripted API server (kube's tower-test pattern): the test
//! plays the API server and asserts every request: server-side apply with the field manager,
//! forced, the dry-run flag, the exact rendered objects; the wait on Deployment status; the
//! Service address; undeploy deleting by label. (A live cluster cannot run on these machines;
//! the kind suite in tests/kind.rs covers that on runners that have kind.)

mod common;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use tower_test::mock;
use wsproxyctl::deploy::{self, DeployOptions, K8sOptions};
use wsproxyctl::output::{Format, Output};
use wsproxyctl::pki::bundle::Bundle;
use wsproxyctl::spec::{DeploySpec, Overrides};

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn respond(send: mock::SendResponse<Response<Body>>, status: u16, body: Value) {
    send.send_response(Response::builder().status(status).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap());
}

async fn body_json(req: Request<Body>) -> Value {
    use http_body_util::BodyExt;
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn query(req: &Request<Body>) -> String {
    req.uri().query().unwrap_or_default().to_string()
}

/// Expect one server-side apply per rendered object, in order.
async fn expect_applies(handle: &mut Handle, expected: &[Value], dry_run: bool) {
    expect_applies_with(handle, expected, dry_run, false).await
}

/// [`expect_applies`]; the namespace is looked up first and, when `namespace_exists`, left
/// alone (no apply), else created with the created-by-deploy annotation.
async fn expect_applies_with(handle: &mut Handle, expected: &[Value], dry_run: bool, namespace_exists: bool) {
    for obj in expected {
        if obj["kind"] == "Namespace" {
            let (req, send) = handle.next_request().await.expect("a namespace lookup");
            assert_eq!((req.method(), req.uri().path()), (&Method::GET, "/api/v1/namespaces/consoles"));
            if namespace_exists {
                respond(send, 200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "consoles"}}));
                continue;
            }
            respond(
                send,
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "metadata": {},
                "reason": "NotFound", "code": 404, "message": "namespaces \"consoles\" not found"}),
            );
        }
        let mut obj = obj.clone();
        if obj["kind"] == "Namespace" {
            obj["metadata"]["annotations"][deploy::k8s::CREATED_ANNOTATION] = json!("true");
        }
        let obj = &obj;
        let (req, send) = handle.next_request().await.expect("an apply request");
        assert_eq!(req.method(), Method::PATCH);
        let q = query(&req);
        assert!(q.contains("fieldManager=wsproxyctl") && q.contains("force=true"), "{q}");
        assert_eq!(q.contains("dryRun=All"), dry_run, "{q}");
        assert_eq!(req.headers()["content-type"], "application/apply-patch+yaml");
        let kind = obj["kind"].as_str().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap();
        let path = req.uri().path().to_string();
        assert!(path.ends_with(&format!("/{name}")), "{kind}: {path}");
        if kind != "Namespace" {
            assert!(path.contains("/namespaces/consoles/"), "{kind}: {path}");
        }
        let sent = body_json(req).await;
        assert_eq!(&sent, obj, "{kind} body is the rendered object");
        respond(send, 200, sent);
    }
}

fn setup() -> (tempfile::TempDir, DeploySpec, Bundle) {
    let common::EngineSide { dir, certs, .. } = common::engine_side();
    let spec = DeploySpec::load(
        None,
        &Overrides {
            proxy_fqdn: Some("proxy.example.com".into()),
            certs: Some(certs.clone()),
            namespace: Some("consoles".into()),
            replicas: Some(2),
            replay_store: Some("redis://valkey.consoles.svc:6379".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let bundle = Bundle::load(&certs).unwrap();
    (dir, spec, bundle)
}

#[tokio::test]
async fn apply_waits_for_rollout_and_reports_the_service() {
    let (_dir, spec, bundle) = setup();
    let expected = wsproxyctl::render::k8s::objects(&spec, Some(&bundle));
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let api = tokio::spawn(async move {
        expect_applies(&mut handle, &expected, false).await;
        // kube's wait watches the Deployment: a list finds it at 0/2, the watch then reports it
        // at 2/2 (the first state that satisfies the condition ends the wait).
        let deployment = |available: i64, version: &str| {
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "wsproxy", "namespace": "consoles", "generation": 1, "resourceVersion": version},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app.kubernetes.io/name": "ovirt-websocket-proxy"}},
                         "template": {"metadata": {"labels": {"app.kubernetes.io/name": "ovirt-websocket-proxy"}},
                                      "spec": {"containers": [{"name": "wsproxy"}]}}},
                "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": available}
            })
        };
        let (req, send) = handle.next_request().await.expect("deployment list");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), "/apis/apps/v1/namespaces/consoles/deployments");
        assert!(query(&req).contains("fieldSelector=metadata.name%3Dwsproxy"), "{}", query(&req));
        assert!(!query(&req).contains("watch=true"), "{}", query(&req));
        respond(
            send,
            200,
            json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "1"}, "items": [deployment(0, "1")]}),
        );
        let (req, send) = handle.next_request().await.expect("deployment watch");
        assert!(query(&req).contains("watch=true") && query(&req).contains("resourceVersion=1"), "{}", query(&req));
        let event = json!({"type": "MODIFIED", "object": deployment(2, "2")});
        send.send_response(Response::builder().status(200).body(Body::from(format!("{event}\n").into_bytes())).unwrap());
        let (req, send) = handle.next_request().await.expect("service get");
        assert_eq!(req.uri().path(), "/api/v1/namespaces/consoles/services/wsproxy");
        respond(
            send,
            200,
            json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "wsproxy"},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 6100}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
            }),
        );
    });
    let opts = DeployOptions { no_verify: true, ..Default::default() };
    let k8s = K8sOptions { timeout: std::time::Duration::from_secs(30), ..Default::default() };
    let report = deploy::to_kubernetes_with(&client, &spec, &opts, &k8s, &Output::new(Format::Text, true, false)).await.unwrap();
    api.await.unwrap();
    let steps: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps[2], "wait for Deployment/wsproxy");
    assert_eq!(report.steps[3].detail, "192.0.2.10:6100 (load balancer)");
    assert!(report.engine[0].contains("WebSocketProxy=proxy.example.com:6100"));
}

/// A server-side dry run of `spec` against the scripted API, which expects exactly `expected`
/// applied with dryRun and nothing else asked.
async fn dry_run(spec: &DeploySpec, expected: Vec<Value>) -> deploy::DeployReport {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let api = tokio::spawn(async move {
        expect_applies(&mut handle, &expected, true).await;
        // Nothing else may be asked.
        assert!(tokio::time::timeout(std::time::Duration::from_millis(300), handle.next_request()).await.is_err());
    });
    let k8s = K8sOptions { dry_run: true, timeout: std::time::Duration::from_secs(5), ..Default::default() };
    let report =
        deploy::to_kubernetes_with(&client, spec, &DeployOptions::default(), &k8s, &Output::new(Format::Text, true, false)).await.unwrap();
    api.await.unwrap();
    report
}

#[tokio::test]
async fn dry_run_sends_dry_run_and_stops() {
    let (_dir, spec, bundle) = setup();
    let report = dry_run(&spec, wsproxyctl::render::k8s::objects(&spec, Some(&bundle))).await;
    assert!(report.engine[0].contains("dry run"), "{:?}", report.engine);
}

/// With certManager, deploy applies a Certificate instead of a Secret of the key (none is
/// read: the certificate directory needs only engine.cer and the issuer's CA).
#[tokio::test]
async fn cert_manager_deploys_a_certificate_and_no_key() {
    let (_dir, mut spec, _bundle) = setup();
    spec.cert_manager = Some(wsproxyctl::spec::CertManager { issuer: "consoles-ca".into(), issuer_kind: Default::default() });
    spec.engine_cer_pem = Some(std::fs::read_to_string(spec.certs.join("engine.cer")).unwrap());
    let expected = wsproxyctl::render::k8s::objects(&spec, None);
    let kinds: Vec<&str> = expected.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"Certificate") && !kinds.contains(&"Secret"), "{kinds:?}");
    let report = dry_run(&spec, expected).await;
    assert!(report.steps.iter().all(|s| s.name != "check certificates"), "no key to check: {:?}", report.steps);
}

#[tokio::test]
async fn refusals_and_timeouts_say_what_to_do() {
    let (_dir, spec, _bundle) = setup();
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let api = tokio::spawn(async move {
        let (_req, send) = handle.next_request().await.unwrap();
        respond(
            send,
            403,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "namespaces is forbidden: User \"dev\" cannot patch resource", "reason": "Forbidden", "code": 403}),
        );
    });
    let err = deploy::to_kubernetes_with(
        &client,
        &spec,
        &DeployOptions::default(),
        &K8sOptions::default(),
        &Output::new(Format::Text, true, false),
    )
    .await
    .unwrap_err();
    api.await.unwrap();
    let err = err.to_string();
    assert!(err.contains("forbidden") && err.contains("rights"), "{err}");
}

#[tokio::test]
async fn undeploy_deletes_by_label() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let api = tokio::spawn(async move {
        let mut deleted = Vec::new();
        loop {
            let Some((req, send)) = handle.next_request().await else {
                break;
            };
            let path = req.uri().path().to_string();
            let q = query(&req);
            match *req.method() {
                Method::GET if path == "/api/v1/namespaces/consoles" => {
                    respond(
                        send,
                        200,
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "consoles",
                        "labels": {"app.kubernetes.io/managed-by": "wsproxyctl"},
                        "annotations": {deploy::k8s::CREATED_ANNOTATION: "true"}}}),
                    );
                }
                Method::GET => {
                    assert!(q.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dwsproxyctl"), "{path}?{q}");
                    let kind = path.rsplit('/').next().unwrap().to_string();
                    let items = if kind == "deployments" || kind == "secrets" {
                        vec![json!({"metadata": {"name": "wsproxy-obj"}})]
                    } else {
                        vec![]
                    };
                    respond(send, 200, json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}));
                }
                Method::DELETE if path.contains("/secrets/") => {
                    // A removal the API refuses: reported as failed, never as removed.
                    deleted.push(path.clone());
                    respond(
                        send,
                        403,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "metadata": {},
                        "reason": "Forbidden", "code": 403, "message": "secrets \"wsproxy-obj\" is forbidden"}),
                    );
                }
                Method::DELETE => {
                    deleted.push(path.clone());
                    respond(send, 200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}));
                    if path == "/api/v1/namespaces/consoles" {
                        break;
                    }
                }
                _ => panic!("unexpected {} {path}", req.method()),
            }
        }
        deleted
    });
    let removed = wsproxyctl::deploy::k8s::undeploy(&client, "consoles").await.unwrap();
    let deleted = api.await.unwrap();
    assert_eq!(removed.removed, ["Deployment/wsproxy-obj", "Namespace/consoles"]);
    assert_eq!(removed.failed.len(), 1, "{:?}", removed.failed);
    assert!(removed.failed[0].starts_with("Secret/wsproxy-obj: ") && removed.failed[0].contains("forbidden"), "{:?}", removed.failed);
    assert!(removed.to_string().contains("could NOT remove Secret/wsproxy-obj"), "{}", removed.to_string());
    assert_eq!(deleted.len(), 3);
}

/// A namespace that existed before deploy (holding someone else's ConfigMap) is never applied
/// to, labelled or deleted: deploy leaves it as it is, undeploy deletes only deploy's objects.
#[tokio::test]
async fn an_existing_namespace_and_its_foreign_objects_survive_deploy_and_undeploy() {
    let (_dir, spec, bundle) = setup();
    let expected = wsproxyctl::render::k8s::objects(&spec, Some(&bundle));
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let api = tokio::spawn(async move {
        expect_applies_with(&mut handle, &expected, true, true).await;
        // undeploy: lists by label (the foreign ConfigMap has none, so it is never listed),
        // then looks at the namespace: labelled like ours, but not created by deploy.
        let mut deleted = Vec::new();
        loop {
            let (req, send) = handle.next_request().await.expect("a request");
            let path = req.uri().path().to_string();
            match *req.method() {
                Method::GET if path == "/api/v1/namespaces/consoles" => {
                    respond(
                        send,
                        200,
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "consoles",
                        "labels": {"app.kubernetes.io/managed-by": "wsproxyctl"}}}),
                    );
                    break;
                }
                Method::GET => {
                    assert!(query(&req).contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dwsproxyctl"), "{path}");
                    let items = if path.ends_with("/deployments") { vec![json!({"metadata": {"name": "wsproxy"}})] } else { vec![] };
                    respond(send, 200, json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}));
                }
                Method::DELETE => {
                    deleted.push(path);
                    respond(send, 200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}));
                }
                _ => panic!("unexpected {} {path}", req.method()),
            }
        }
        deleted
    });
    let opts = DeployOptions { no_verify: true, ..Default::default() };
    let k8s = K8sOptions { dry_run: true, timeout: std::time::Duration::from_secs(30), ..Default::default() };
    let out = Output::new(Format::Json, true, false);
    deploy::to_kubernetes_with(&client, &spec, &opts, &k8s, &out).await.unwrap();
    let removed = deploy::k8s::undeploy(&client, "consoles").await.unwrap();
    let deleted = api.await.unwrap();
    assert_eq!(deleted, ["/apis/apps/v1/namespaces/consoles/deployments/wsproxy"]);
    assert_eq!(removed.removed, ["Deployment/wsproxy"]);
}

/// `logs --target k8s`: every relay pod's log, each line prefixed with its pod, `--since` sent
/// as sinceSeconds, only the relay's container read.
#[tokio::test]
async fn logs_read_every_relay_pod() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let api = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("pod list");
        assert_eq!(req.uri().path(), "/api/v1/namespaces/consoles/pods");
        assert!(query(&req).contains("labelSelector=app.kubernetes.io%2Fname%3Dovirt-websocket-proxy"), "{}", query(&req));
        let pod = |name: &str| json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "wsproxy"}]}});
        respond(send, 200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod("wsproxy-a"), pod("wsproxy-b")]}));
        for name in ["wsproxy-a", "wsproxy-b"] {
            let (req, send) = handle.next_request().await.expect("pod log");
            assert_eq!(req.uri().path(), format!("/api/v1/namespaces/consoles/pods/{name}/log"));
            assert!(query(&req).contains("container=wsproxy") && query(&req).contains("sinceSeconds=600"), "{}", query(&req));
            let text = format!("{{\"message\":\"wsproxy ready\",\"pod\":\"{name}\"}}\nsecond line\n");
            send.send_response(Response::builder().status(200).body(Body::from(text.into_bytes())).unwrap());
        }
    });
    let mut out = Vec::new();
    let opts = deploy::logs::LogsOptions { follow: false, since: Some(std::time::Duration::from_secs(600)) };
    deploy::logs::kubernetes(&client, "consoles", &opts, &mut out).await.unwrap();
    api.await.unwrap();
    let text = String::from_utf8(out).unwrap();
    for name in ["wsproxy-a", "wsproxy-b"] {
        assert!(text.contains(&format!("[{name}] {{\"message\":\"wsproxy ready\",\"pod\":\"{name}\"}}")), "{text}");
        assert!(text.contains(&format!("[{name}] second line")), "{text}");
    }
}

/// `status --target k8s`: replicas ready, the image, restarts summed over the pods, the oldest
/// pod's start; a missing Deployment is a failed check naming what to do.
#[tokio::test]
async fn status_reports_readiness_image_and_restarts() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let api = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("deployment get");
        assert_eq!(req.uri().path(), "/apis/apps/v1/namespaces/consoles/deployments/wsproxy");
        respond(
            send,
            200,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wsproxy", "namespace": "consoles"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app.kubernetes.io/name": "ovirt-websocket-proxy"}},
                         "template": {"metadata": {}, "spec": {"containers": [{"name": "wsproxy", "image": "quay.io/example/wsproxy:1.2"}]}}},
                "status": {"readyReplicas": 1}
            }),
        );
        let (req, send) = handle.next_request().await.expect("pod list");
        assert_eq!(req.uri().path(), "/api/v1/namespaces/consoles/pods");
        let pod = |start: &str, restarts: i32| {
            json!({"metadata": {"name": "p"}, "status": {"startTime": start,
                   "containerStatuses": [{"name": "wsproxy", "restartCount": restarts, "ready": true, "image": "i", "imageID": "", "started": true}]}})
        };
        respond(
            send,
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod("2026-12-06T10:00:00Z", 2), pod("2026-12-05T09:00:00Z", 1)]}),
        );
        let (req, send) = handle.next_request().await.expect("deployment get, gone");
        assert_eq!(req.uri().path(), "/apis/apps/v1/namespaces/consoles/deployments/wsproxy");
        respond(
            send,
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
        );
    });
    let s = deploy::status::kubernetes(&client, "consoles", None).await.unwrap();
    assert_eq!((s.mode.as_str(), s.running, s.restarts), ("1/2 ready", true, 3), "{s:?}");
    assert_eq!(s.image.as_deref(), Some("quay.io/example/wsproxy:1.2"));
    assert!(s.started.as_deref().is_some_and(|t| t.starts_with("2026-12-05")), "the oldest pod's start: {s:?}");
    assert!(!s.ok && s.problems[0].contains("1 of 2 replicas ready"), "{s:?}");
    let gone = deploy::status::kubernetes(&client, "consoles", None).await.unwrap();
    assert!(!gone.ok && gone.problems[0].contains("deploy --target k8s"), "{gone:?}");
    api.await.unwrap();
}
