//! The Helm chart and `render --target k8s` produce the same objects from the same inputs;
//! the chart lints (--strict), validates strictly, and its values.schema.json is generated from the
//! chart's values type.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::stderr;
use wsproxyctl::pki::bundle::Bundle;
use wsproxyctl::spec::{DeploySpec, Overrides};

fn helm() -> Command {
    Command::new(common::tool("helm"))
}

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ovirt-websocket-proxy")
}

fn sorted(mut objs: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    objs.sort_by_key(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]));
    objs
}

#[test]
fn values_schema_is_generated_from_the_spec() {
    let checked_in: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap()).unwrap();
    assert_eq!(
        checked_in,
        wsproxyctl::render::helm::values_schema(),
        "charts/ovirt-websocket-proxy/values.schema.json is stale: wsproxyctl config schema --helm > charts/ovirt-websocket-proxy/values.schema.json"
    );
}

#[test]
fn helm_template_equals_render_for_the_same_inputs() {
    let common::EngineSide { dir, certs, .. } = common::engine_side();
    let bundle = Bundle::load(&certs).unwrap();

    let specs = [
        "proxyFqdn: proxy.example.com\n".to_string(),
        "proxyFqdn: proxy.example.com\nreplicas: 2\nperReplicaSingleUse: true\ndrainSeconds: 600\n".to_string(),
        "proxyFqdn: proxy.example.com\nservice: {type: ClusterIP}\nmetrics: {port: 9200, serviceMonitor: true}\n".to_string(),
        "proxyFqdn: proxy.example.com\nmetrics: {}\n".to_string(),
        // The admin listener: client certificates from the mounted CA, a token from the
        // operator's Secret; and the token alone.
        "proxyFqdn: proxy.example.com\nadmin: {port: 6200, tokenSecret: ops-token}\nmaxSessionSeconds: 28800\n".to_string(),
        "proxyFqdn: proxy.example.com\nadmin: {clientCertificates: false, tokenSecret: ops-token}\nmetrics: {}\n".to_string(),
        "proxyFqdn: proxy.example.com\nservice: {type: ClusterIP}\nexpose: {ingress: {className: nginx}, openshiftRoute: true, \
         tlsRoute: {gateway: edge, gatewayNamespace: gateways, sectionName: tls}}\n"
            .to_string(),
        "proxyFqdn: proxy.example.com\nexpose: {ingress: {className: public, tls: Reencrypt}, tlsRoute: {gateway: edge}}\n".to_string(),
        "proxyFqdn: proxy.example.com\ncertManager: {issuer: consoles-ca, issuerKind: ClusterIssuer}\n".to_string(),
        // A CA for the hypervisors' certificates: in the ConfigMap, named by WSPROXY_TARGET_CA.
        format!("proxyFqdn: proxy.example.com\ntargetCa: {}\n", certs.join("ca.pem").display()),
        // Addresses and CIDRs only: egress limited to them, DNS and the store's port.
        "proxyFqdn: proxy.example.com\ntargetAllow: ['192.168.10.0/24', '10.1.2.3', 'fd00::7']\nreplicas: 2\n\
         replayStore: {url: 'redis://valkey.consoles.svc:6380/1'}\n"
            .to_string(),
        "proxyFqdn: proxy.example.com\nport: 7443\nimage: quay.io/ovirt/websocket-proxy:1.2\nnamespace: consoles\nreplicas: 3\n\
         replayStore: {url: 'rediss://valkey.consoles.svc:6379', passwordSecret: valkey-auth, caSecret: valkey-ca, failOpen: true}\n\
         service: {type: NodePort, nodePort: 30610}\ntargetAllow: ['192.168.10.0/24', '*.hosts.example.com']\n\
         labels: {team: virt}\nresources: {requests: {cpu: 50m, memory: 32Mi}, limits: {cpu: '1', memory: 128Mi}}\n\
         trustedProxies: ['10.0.0.0/8', 'fd00::1']\nproxyProtocol: required\n"
            .to_string(),
    ];
    for (i, text) in specs.iter().enumerate() {
        let file = dir.path().join(format!("deploy{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        let spec = DeploySpec::load(Some(&file), &Overrides { certs: Some(certs.clone()), ..Default::default() }).unwrap();
        let rendered = sorted(wsproxyctl::render::k8s::objects(&spec, Some(&bundle)));

        let values = dir.path().join(format!("values{i}.yaml"));
        std::fs::write(&values, wsproxyctl::render::helm::values(&spec, &bundle)).unwrap();
        let lint = helm().args(["lint", "--strict"]).arg(chart()).arg("-f").arg(&values).output().unwrap();
        assert!(lint.status.success(), "helm lint: {}{}", String::from_utf8_lossy(&lint.stdout), stderr(&lint));
        let out = helm().args(["template", "wsproxy", "-n", &spec.namespace]).arg(chart()).arg("-f").arg(&values).output().unwrap();
        assert!(out.status.success(), "helm template: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let templated: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
            .filter(|v| !v.is_null())
            .collect();
        // `helm test`'s pod is the chart's alone (render deploys no test hooks): it runs the
        // relay image's own healthcheck against the Service's /readyz.
        let (tests, templated): (Vec<_>, Vec<_>) =
            templated.into_iter().partition(|o| o["metadata"]["annotations"]["helm.sh/hook"] == "test");
        assert_eq!(tests.len(), 1, "spec {i}: one helm test pod");
        let args = &tests[0]["spec"]["containers"][0]["args"];
        assert_eq!(args[0], "healthcheck", "{args}");
        let selector = &rendered.iter().find(|o| o["kind"] == "Service").unwrap()["spec"]["selector"];
        let labels = &tests[0]["metadata"]["labels"];
        assert!(selector.as_object().unwrap().iter().any(|(k, v)| &labels[k] != v), "the test pod must not match the Service: {labels}");
        assert!(args.to_string().contains(&format!("https://wsproxy.{}.svc:{}/readyz", spec.namespace, spec.port)), "{args}");
        let templated = sorted(templated.into_iter().map(as_wsproxyctl_labels).collect());
        // Helm charts leave the namespace to `helm install -n --create-namespace`; render
        // creates it (with its Pod Security label), as deploy does.
        let rendered: Vec<_> = rendered.into_iter().filter(|o| o["kind"] != "Namespace").collect();
        assert_eq!(templated.len(), rendered.len(), "spec {i}: object count");
        for (t, r) in templated.iter().zip(&rendered) {
            assert_eq!(t, r, "spec {i}: {} differs between helm template and render", r["kind"]);
        }

        // The templated objects are valid for a current Kubernetes, strictly (ServiceMonitor,
        // TLSRoute and Route are CRDs' kinds, which kubernetes-validate does not know: render's
        // tests check them, the TLSRoute against Gateway API's schema).
        let manifest = dir.path().join(format!("helm{i}.yaml"));
        let core: Vec<String> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .filter(|v| {
                !v.is_null() && !["ServiceMonitor", "TLSRoute", "Route", "Certificate"].contains(&v["kind"].as_str().unwrap_or_default())
            })
            .map(|v| serde_yaml::to_string(&v).unwrap())
            .collect();
        std::fs::write(&manifest, core.join("---\n")).unwrap();
        let o = Command::new("kubernetes-validate").args(["--strict", "-k", "1.37.0"]).arg(&manifest).output().unwrap();
        assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    }
}

use serde::Deserialize;

/// The chart's objects with render's labels: Helm's conventions add `helm.sh/chart` and
/// `app.kubernetes.io/version`, and say `managed-by: Helm` where render says wsproxyctl.
fn as_wsproxyctl_labels(mut obj: serde_json::Value) -> serde_json::Value {
    for path in ["/metadata/labels", "/spec/template/metadata/labels", "/spec/secretTemplate/labels"] {
        if let Some(l) = obj.pointer_mut(path).and_then(|l| l.as_object_mut()) {
            assert!(l.remove("helm.sh/chart").is_some_and(|v| v.as_str().unwrap().starts_with("ovirt-websocket-proxy-")), "{l:?}");
            assert!(l.remove("app.kubernetes.io/version").is_some(), "{l:?}");
            assert_eq!(l["app.kubernetes.io/managed-by"], "Helm");
            l.insert("app.kubernetes.io/managed-by".into(), "wsproxyctl".into());
        }
    }
    obj
}

/// `helm template RELEASE -n NAMESPACE` with extra arguments: its objects, and its text.
fn template(release: &str, namespace: &str, args: &[&str]) -> (String, Vec<serde_json::Value>) {
    let out = helm().args(["template", release, "-n", namespace]).arg(chart()).args(args).output().unwrap();
    assert!(out.status.success(), "helm template: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let objs = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    (text, objs)
}

fn kind<'a>(objs: &'a [serde_json::Value], kind: &str) -> Option<&'a serde_json::Value> {
    objs.iter().find(|o| o["kind"] == kind && o["metadata"]["annotations"]["helm.sh/hook"].is_null())
}

/// The chart behaves as users of well-regarded charts expect: names and namespace from the
/// release (two releases in one namespace do not collide), the standard labels, an existing
/// Secret instead of keys in Helm's history, the image as repository/tag/digest, scheduling
/// and annotations passed through, optional NetworkPolicy and PodDisruptionBudget, and
/// `global` accepted (as a subchart receives it).
#[test]
fn the_chart_follows_helm_conventions() {
    let base = ["--set", "proxyFqdn=proxy.example.com", "--set", "certificates.existingSecret=console-certs"];
    let (_, one) = template("one", "consoles", &base);
    let (_, two) = template("two", "consoles", &base);
    let names = |objs: &[serde_json::Value]| -> Vec<String> {
        objs.iter().map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"].as_str().unwrap())).collect()
    };
    let (n1, n2) = (names(&one), names(&two));
    assert!(n1.iter().all(|n| !n2.contains(n)), "two releases share no object: {n1:?} {n2:?}");
    assert!(one.iter().all(|o| o["metadata"]["namespace"] == "consoles"), "every object in the release's namespace");
    assert!(kind(&one, "Namespace").is_none(), "the namespace is helm install -n's");

    let dep = kind(&one, "Deployment").unwrap();
    assert_eq!(dep["metadata"]["name"], "one-ovirt-websocket-proxy");
    let labels = &dep["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/instance"], "one");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(labels["app.kubernetes.io/version"], "0.1.0");
    assert_eq!(labels["helm.sh/chart"], "ovirt-websocket-proxy-0.1.0");
    let pod = &dep["spec"]["template"];
    assert_eq!(pod["spec"]["containers"][0]["image"], wsproxyctl::image::DEFAULT_TAG, "the tag defaults to appVersion: image build's");
    // The existing Secret: mounted, none made, no checksum of keys Helm never saw.
    assert!(kind(&one, "Secret").is_none());
    let certs = pod["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "certs").unwrap();
    assert_eq!(certs["secret"]["secretName"], "console-certs");
    assert!(pod["metadata"]["annotations"]["wsproxyctl.ovirt.org/certs-checksum"].is_null());
    let svc = kind(&one, "Service").unwrap();
    assert_eq!(svc["spec"]["selector"]["app.kubernetes.io/instance"], "one");

    // Everything a platform team sets, passed through; a subchart's `global` accepted.
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        values.path(),
        r#"
global: {imageRegistry: ignored.example.com}
fullnameOverride: consoles-proxy
image: {repository: quay.io/example/wsproxy, tag: "1.2", digest: "sha256:0123", pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
podAnnotations: {prometheus.io/scrape: "false"}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: consoles, effect: NoSchedule}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app.kubernetes.io/name: ovirt-websocket-proxy}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector: {matchLabels: {app.kubernetes.io/name: ovirt-websocket-proxy}}
service: {type: LoadBalancer, annotations: {metallb.universe.tf/address-pool: consoles}}
networkPolicy: {enabled: false}
podDisruptionBudget: {enabled: false}
"#,
    )
    .unwrap();
    let (text, objs) = template("three", "virt", &[base[0], base[1], base[2], base[3], "-f", values.path().to_str().unwrap()]);
    assert!(kind(&objs, "NetworkPolicy").is_none() && kind(&objs, "PodDisruptionBudget").is_none(), "both switched off");
    let dep = kind(&objs, "Deployment").unwrap();
    assert_eq!(dep["metadata"]["name"], "consoles-proxy");
    let pod = &dep["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "quay.io/example/wsproxy:1.2@sha256:0123");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], "regcred");
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/scrape"], "false");
    assert!(pod["metadata"]["annotations"]["wsproxyctl.ovirt.org/config-checksum"].is_string(), "the chart's own annotations stay");
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["spec"]["tolerations"][0]["value"], "consoles");
    assert!(pod["spec"]["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["spec"]["topologySpreadConstraints"][0]["maxSkew"], 1);
    assert_eq!(kind(&objs, "Service").unwrap()["metadata"]["annotations"]["metallb.universe.tf/address-pool"], "consoles");
    let test_pod = objs.iter().find(|o| o["metadata"]["annotations"]["helm.sh/hook"] == "test").unwrap();
    assert_eq!(test_pod["spec"]["containers"][0]["image"], c["image"]);
    assert!(test_pod["spec"]["containers"][0]["args"].to_string().contains("https://consoles-proxy.virt.svc:6100/readyz"));
    let lint = helm().args(["lint", "--strict"]).arg(chart()).args(base).arg("-f").arg(values.path()).output().unwrap();
    assert!(lint.status.success(), "helm lint --strict: {}{}", String::from_utf8_lossy(&lint.stdout), stderr(&lint));
    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifest.path(), &text).unwrap();
    let o = Command::new("kubernetes-validate").args(["--strict", "-k", "1.37.0"]).arg(manifest.path()).output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));

    // A value the chart does not have is refused by its schema, naming it.
    let out = helm().args(["template", "x"]).arg(chart()).args(base).args(["--set", "namespace=old"]).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("namespace"), "{}", stderr(&out));
}

#[test]
fn chart_without_certificates_says_what_to_pass() {
    let out = helm().args(["template", "wsproxy"]).arg(chart()).args(["--set", "proxyFqdn=p.example.com"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--set-file") && stderr(&out).contains("existingSecret"), "{}", stderr(&out));
}
