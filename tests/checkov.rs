//! checkov (the security scanner platform teams run on manifests) passes every Kubernetes
//! rendering: render's variants, the kustomize base as kubectl builds it, and the Helm chart as
//! helm templates it. The only checks skipped are the ones .checkov.yaml names with a reason,
//! and the helm test pod's three (annotated on the pod).

mod common;

use std::path::Path;
use std::process::Command;

use common::{ctl, s, stderr};

fn checkov(dir: &Path) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(common::tool("checkov-venv/bin/checkov"))
        .args(["--skip-download", "--quiet", "--compact", "-o", "json", "--framework", "kubernetes", "--config-file"])
        .arg(root.join(".checkov.yaml"))
        .arg("-d")
        .arg(dir)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("checkov printed no report ({e}): {}{}", String::from_utf8_lossy(&o.stdout), stderr(&o)));
    report
}

#[test]
fn every_rendering_passes_checkov() {
    let (_keep, certs) = {
        let common::EngineSide { dir, certs, .. } = common::engine_side();
        (dir, certs)
    };
    // Not tempdir()'s ".tmp..." name: checkov skips hidden directories (it found nothing there).
    let scan = tempfile::Builder::new().prefix("checkov-scan-").tempdir().unwrap();
    let render = |name: &str, args: &[&str]| {
        let mut all = vec!["render", "--target", "k8s", "--proxy-fqdn", "proxy.example.com", "--certs", s(&certs), "--out"];
        let out = scan.path().join(name);
        all.push(s(&out));
        all.extend_from_slice(args);
        let o = ctl(&all);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
    };
    render("defaults", &[]);
    render("replicas", &["--replicas", "3", "--replay-store", "rediss://valkey.consoles.svc:6379", "--service-type", "NodePort"]);
    render("cluster-ip", &["--service-type", "ClusterIP", "--image", "registry.example.com/virt/wsproxy@sha256:0123"]);
    let ways_in = _keep.path().join("ways-in.yaml");
    std::fs::write(
        &ways_in,
        "proxyFqdn: proxy.example.com\nservice: {type: ClusterIP}\nmetrics: {serviceMonitor: true}\ncertManager: {issuer: ca}\n\
         expose: {ingress: {className: nginx}, tlsRoute: {gateway: edge}, openshiftRoute: true}\n",
    )
    .unwrap();
    render("ways-in", &["-f", s(&ways_in)]);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = Command::new("kubectl").arg("kustomize").arg(root.join("manifests")).output().unwrap();
    assert!(base.status.success(), "{}", stderr(&base));
    std::fs::write(scan.path().join("kustomize-base.yaml"), &base.stdout).unwrap();
    let chart = Command::new(common::tool("helm"))
        .args(["template", "wsproxy", "-n", "consoles"])
        .arg(root.join("charts/ovirt-websocket-proxy"))
        .args([
            "--set",
            "proxyFqdn=proxy.example.com",
            "--set",
            "certificates.existingSecret=wsproxy-certs",
            "--set",
            "metrics.enabled=true",
        ])
        .output()
        .unwrap();
    assert!(chart.status.success(), "{}", stderr(&chart));
    std::fs::write(scan.path().join("chart.yaml"), &chart.stdout).unwrap();

    let report = checkov(scan.path());
    let summary = &report["summary"];
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .map(|checks| checks.iter().map(|c| format!("{} {} ({})", c["check_id"], c["check_name"], c["resource"])).collect())
        .unwrap_or_default();
    assert!(failed.is_empty(), "checkov failed checks:\n{}", failed.join("\n"));
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    // Five renderings and the chart: the scan really looked at them.
    assert!(summary["resource_count"].as_u64().unwrap_or(0) >= 25, "{summary}");
    assert!(summary["passed"].as_u64().unwrap_or(0) >= 300, "{summary}");
    assert_eq!(summary["skipped"], 3, "only the helm test pod's annotated skips: {summary}");
}
