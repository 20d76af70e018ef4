//! The Helm chart and `render --target k8s` produce the same objects from the same inputs;
//! the chart lints, validates strictly, and its values.schema.json is generated from the spec.

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
        wsproxyctl::spec::helm_values_schema(),
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
        // A CA for the hypervisors' certificates: in the ConfigMap, named by WSPROXY_TARGET_CA.
        format!("proxyFqdn: proxy.example.com\ntargetCa: {}\n", certs.join("ca.pem").display()),
        // Addresses and CIDRs only: egress limited to them, DNS and the store's port.
        "proxyFqdn: proxy.example.com\ntargetAllow: ['192.168.10.0/24', '10.1.2.3', 'fd00::7']\nreplicas: 2\n\
         replayStore: {url: 'redis://valkey.consoles.svc:6380/1'}\n"
            .to_string(),
        "proxyFqdn: proxy.example.com\nport: 7443\nimage: quay.io/ovirt/websocket-proxy:1.2\nnamespace: consoles\nreplicas: 3\n\
         replayStore: {url: 'rediss://valkey.consoles.svc:6379', passwordSecret: valkey-auth, caSecret: valkey-ca, failOpen: true}\n\
         service: {type: NodePort, nodePort: 30610}\ntargetAllow: ['192.168.10.0/24', '*.hosts.example.com']\n\
         labels: {team: virt}\nresources: {requests: {cpu: 50m, memory: 32Mi}, limits: {cpu: '1', memory: 128Mi}}\n"
            .to_string(),
    ];
    for (i, text) in specs.iter().enumerate() {
        let file = dir.path().join(format!("deploy{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        let spec = DeploySpec::load(Some(&file), &Overrides { certs: Some(certs.clone()), ..Default::default() }).unwrap();
        let rendered = sorted(wsproxyctl::render::k8s::objects(&spec, Some(&bundle)));

        let values = dir.path().join(format!("values{i}.yaml"));
        std::fs::write(&values, wsproxyctl::render::helm_values(&spec, &bundle)).unwrap();
        let lint = helm().arg("lint").arg(chart()).arg("-f").arg(&values).output().unwrap();
        assert!(lint.status.success(), "helm lint: {}{}", String::from_utf8_lossy(&lint.stdout), stderr(&lint));
        let out = helm().args(["template", "wsproxy"]).arg(chart()).arg("-f").arg(&values).output().unwrap();
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
        let templated = sorted(templated);
        assert_eq!(templated.len(), rendered.len(), "spec {i}: object count");
        for (t, r) in templated.iter().zip(&rendered) {
            assert_eq!(t, r, "spec {i}: {} differs between helm template and render", r["kind"]);
        }

        // The templated objects are valid for a current Kubernetes, strictly.
        let manifest = dir.path().join(format!("helm{i}.yaml"));
        std::fs::write(&manifest, &text).unwrap();
        let o = Command::new("kubernetes-validate").args(["--strict", "-k", "1.37.0"]).arg(&manifest).output().unwrap();
        assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    }
}

use serde::Deserialize;

#[test]
fn chart_without_certificates_says_what_to_pass() {
    let out = helm().args(["template", "wsproxy"]).arg(chart()).args(["--set", "proxyFqdn=p.example.com"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--set-file"), "{}", stderr(&out));
}
