//! A Kubernetes API server played from a script, for the tests of deploy, undeploy, logs and
//! status against Kubernetes: each [`Step`] expects the requests one part of an operation
//! makes, checks them, and answers as a cluster would. A test then reads as one scenario: the
//! script, the operation, what it reported. (The shape of kube-rs's controller-rs, whose
//! `ApiServerVerifier` plays a scenario on tower-test's mock service.) Everything is in the
//! namespace [`NAMESPACE`].

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use tower_test::mock;

pub const NAMESPACE: &str = "consoles";

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// The namespace as the script's cluster has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// Not there.
    Absent,
    /// There before deploy (someone else's, or labelled like ours without deploy's
    /// created-by annotation): never applied to, never deleted.
    Existing,
    /// Created by deploy (it carries the annotation): undeploy deletes it last.
    CreatedByDeploy,
}

/// One part of the scenario.
#[derive(Debug)]
pub enum Step {
    /// Deploy's server-side apply of exactly `objects`, in order, each answered with what was
    /// sent. The namespace is looked up first: absent, it is applied with the created-by
    /// annotation; existing, it is left alone.
    Apply { objects: Vec<Value>, dry_run: bool, namespace: Namespace },
    /// The wait for the rollout: a list finds Deployment/wsproxy with none of its `replicas`
    /// available, then the watch reports all of them available.
    Rollout { replicas: i64 },
    /// The browsers' Service read, behind a load balancer at `ip`.
    LoadBalancer { ip: &'static str, port: u16 },
    /// The next request refused with `code` (a Status with `reason` and `message`).
    Refuse { code: u16, reason: &'static str, message: &'static str },
    /// Nothing more is asked for 300 ms.
    Quiet,
    /// Undeploy: every kind deploy makes listed by its label, with `listed` (kind's plural,
    /// name) found; each found object deleted, refused where its plural is in `forbidden`;
    /// the namespace looked up last, and deleted only when deploy created it.
    Undeploy { listed: Vec<(&'static str, &'static str)>, forbidden: Vec<&'static str>, namespace: Namespace },
    /// The relay's pods listed by their selector.
    Pods(Vec<Value>),
    /// Each named pod's log read: the relay's container, since `since_seconds`; two lines each.
    Logs { pods: Vec<&'static str>, since_seconds: u64 },
    /// Deployment/wsproxy read: this object, or not found.
    Deployment(Option<Value>),
}

/// What the script saw: the paths deleted, in order.
#[derive(Debug, Default)]
pub struct Played {
    pub deleted: Vec<String>,
}

/// A client talking to the scripted server, and the task playing the script (it panics on a
/// request the script did not expect; await it after the operation).
pub fn play(script: Vec<Step>) -> (kube::Client, tokio::task::JoinHandle<Played>) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let task = tokio::spawn(async move {
        let mut played = Played::default();
        for step in script {
            match step {
                Step::Apply { objects, dry_run, namespace } => apply(&mut handle, &objects, dry_run, namespace).await,
                Step::Rollout { replicas } => rollout(&mut handle, replicas).await,
                Step::LoadBalancer { ip, port } => load_balancer(&mut handle, ip, port).await,
                Step::Refuse { code, reason, message } => {
                    let (_req, send) = handle.next_request().await.expect("a request to refuse");
                    respond(send, code, status(code, reason, message));
                }
                Step::Quiet => {
                    let next = tokio::time::timeout(std::time::Duration::from_millis(300), handle.next_request()).await;
                    assert!(next.is_err(), "nothing more was expected");
                }
                Step::Undeploy { listed, forbidden, namespace } => {
                    undeploy(&mut handle, &listed, &forbidden, namespace, &mut played.deleted).await
                }
                Step::Pods(items) => {
                    let (req, send) = handle.next_request().await.expect("a pod list");
                    assert_eq!(req.uri().path(), format!("/api/v1/namespaces/{NAMESPACE}/pods"));
                    assert!(query(&req).contains("labelSelector=app.kubernetes.io%2Fname%3Dovirt-websocket-proxy"), "{}", query(&req));
                    respond(send, 200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}));
                }
                Step::Logs { pods, since_seconds } => logs(&mut handle, &pods, since_seconds).await,
                Step::Deployment(object) => {
                    let (req, send) = handle.next_request().await.expect("a Deployment read");
                    assert_eq!(req.uri().path(), format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/wsproxy"));
                    match object {
                        Some(object) => respond(send, 200, object),
                        None => respond(send, 404, status(404, "NotFound", "deployments.apps \"wsproxy\" not found")),
                    }
                }
            }
        }
        played
    });
    (client, task)
}

/// A pod of the relay, for [`Step::Pods`].
pub fn pod(name: &str, started: &str, restarts: i32) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "wsproxy"}]},
        "status": {"startTime": started, "containerStatuses": [{"name": "wsproxy", "restartCount": restarts, "ready": true,
                   "image": "i", "imageID": "", "started": true}]}
    })
}

/// The two lines [`Step::Logs`] answers for `pod`.
pub fn log_of(pod: &str) -> String {
    format!("{{\"message\":\"wsproxy ready\",\"pod\":\"{pod}\"}}\nsecond line\n")
}

fn respond(send: mock::SendResponse<Response<Body>>, code: u16, body: Value) {
    send.send_response(Response::builder().status(code).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap());
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "metadata": {}, "reason": reason, "code": code, "message": message})
}

async fn body_json(req: Request<Body>) -> Value {
    use http_body_util::BodyExt;
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn query(req: &Request<Body>) -> String {
    req.uri().query().unwrap_or_default().to_string()
}

fn namespace_object(state: Namespace) -> Value {
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE,
                        "labels": {"app.kubernetes.io/managed-by": "wsproxyctl"}}});
    if state == Namespace::CreatedByDeploy {
        ns["metadata"]["annotations"] = json!({wsproxyctl::deploy::k8s::CREATED_ANNOTATION: "true"});
    }
    ns
}

async fn apply(handle: &mut Handle, objects: &[Value], dry_run: bool, namespace: Namespace) {
    for obj in objects {
        let mut obj = obj.clone();
        if obj["kind"] == "Namespace" {
            let (req, send) = handle.next_request().await.expect("a namespace lookup");
            assert_eq!((req.method(), req.uri().path()), (&Method::GET, format!("/api/v1/namespaces/{NAMESPACE}").as_str()));
            if namespace == Namespace::Existing {
                respond(send, 200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}));
                continue;
            }
            respond(send, 404, status(404, "NotFound", "namespaces \"consoles\" not found"));
            obj["metadata"]["annotations"][wsproxyctl::deploy::k8s::CREATED_ANNOTATION] = json!("true");
        }
        let (req, send) = handle.next_request().await.expect("an apply request");
        assert_eq!(req.method(), Method::PATCH);
        let q = query(&req);
        assert!(q.contains("fieldManager=wsproxyctl") && q.contains("force=true"), "{q}");
        assert_eq!(q.contains("dryRun=All"), dry_run, "{q}");
        assert_eq!(req.headers()["content-type"], "application/apply-patch+yaml");
        let kind = obj["kind"].as_str().unwrap().to_string();
        let path = req.uri().path().to_string();
        assert!(path.ends_with(&format!("/{}", obj["metadata"]["name"].as_str().unwrap())), "{kind}: {path}");
        if kind != "Namespace" {
            assert!(path.contains(&format!("/namespaces/{NAMESPACE}/")), "{kind}: {path}");
        }
        let sent = body_json(req).await;
        assert_eq!(sent, obj, "{kind} body is the rendered object");
        respond(send, 200, sent);
    }
}

/// Deployment/wsproxy with `available` of 2 replicas, at `version`.
fn deployment(replicas: i64, available: i64, version: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "wsproxy", "namespace": NAMESPACE, "generation": 1, "resourceVersion": version},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": "ovirt-websocket-proxy"}},
                 "template": {"metadata": {"labels": {"app.kubernetes.io/name": "ovirt-websocket-proxy"}},
                              "spec": {"containers": [{"name": "wsproxy"}]}}},
        "status": {"observedGeneration": 1, "updatedReplicas": replicas, "availableReplicas": available}
    })
}

/// kube's wait: a list, then a watch from its resourceVersion (the first state that satisfies
/// the condition ends the wait).
async fn rollout(handle: &mut Handle, replicas: i64) {
    let (req, send) = handle.next_request().await.expect("a Deployment list");
    assert_eq!((req.method(), req.uri().path()), (&Method::GET, format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments").as_str()));
    assert!(query(&req).contains("fieldSelector=metadata.name%3Dwsproxy") && !query(&req).contains("watch=true"), "{}", query(&req));
    let list = json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "1"},
                      "items": [deployment(replicas, 0, "1")]});
    respond(send, 200, list);
    let (req, send) = handle.next_request().await.expect("a Deployment watch");
    assert!(query(&req).contains("watch=true") && query(&req).contains("resourceVersion=1"), "{}", query(&req));
    let event = json!({"type": "MODIFIED", "object": deployment(replicas, replicas, "2")});
    send.send_response(Response::builder().status(200).body(Body::from(format!("{event}\n").into_bytes())).unwrap());
}

async fn load_balancer(handle: &mut Handle, ip: &str, port: u16) {
    let (req, send) = handle.next_request().await.expect("the Service read");
    assert_eq!(req.uri().path(), format!("/api/v1/namespaces/{NAMESPACE}/services/wsproxy"));
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "wsproxy"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": port}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
    });
    respond(send, 200, service);
}

async fn undeploy(handle: &mut Handle, listed: &[(&str, &str)], forbidden: &[&str], namespace: Namespace, deleted: &mut Vec<String>) {
    let namespace_path = format!("/api/v1/namespaces/{NAMESPACE}");
    loop {
        let (req, send) = handle.next_request().await.expect("an undeploy request");
        let path = req.uri().path().to_string();
        match *req.method() {
            Method::GET if path == namespace_path => {
                if namespace == Namespace::Absent {
                    respond(send, 404, status(404, "NotFound", "namespaces \"consoles\" not found"));
                    return;
                }
                respond(send, 200, namespace_object(namespace));
                if namespace != Namespace::CreatedByDeploy {
                    return;
                }
            }
            Method::GET => {
                assert!(query(&req).contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dwsproxyctl"), "{path}?{}", query(&req));
                let plural = path.rsplit('/').next().unwrap();
                let items: Vec<Value> =
                    listed.iter().filter(|(p, _)| *p == plural).map(|(_, name)| json!({"metadata": {"name": name}})).collect();
                respond(send, 200, json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}));
            }
            Method::DELETE => {
                deleted.push(path.clone());
                let plural = path.rsplit('/').nth(1).unwrap_or_default();
                if forbidden.contains(&plural) {
                    respond(
                        send,
                        403,
                        status(403, "Forbidden", &format!("{plural} \"{}\" is forbidden", path.rsplit('/').next().unwrap())),
                    );
                } else {
                    respond(send, 200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}));
                }
                if path == namespace_path {
                    return;
                }
            }
            _ => panic!("unexpected {} {path}", req.method()),
        }
    }
}

async fn logs(handle: &mut Handle, pods: &[&str], since_seconds: u64) {
    for name in pods {
        let (req, send) = handle.next_request().await.expect("a pod's log");
        assert_eq!(req.uri().path(), format!("/api/v1/namespaces/{NAMESPACE}/pods/{name}/log"));
        let q = query(&req);
        assert!(q.contains("container=wsproxy") && q.contains(&format!("sinceSeconds={since_seconds}")), "{q}");
        send.send_response(Response::builder().status(200).body(Body::from(log_of(name).into_bytes())).unwrap());
    }
}
