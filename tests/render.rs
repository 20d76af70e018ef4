//! Rendered outputs checked by the real tools: kubernetes-validate --strict (official schemas),
//! kubectl kustomize, Quadlet's own -dryrun, and the podman command Quadlet generates, run for
//! real until the relay answers /healthz.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ctl, podman, s, stderr, tool};
use testkit::{free_port, run};

fn render(target: &str, out: &Path, extra: &[&str]) {
    let mut args = vec!["render", "--target", target, "--out", s(out)];
    args.extend_from_slice(extra);
    let o = ctl(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml") && !p.ends_with("deploy.yaml"))
        .collect();
    v.sort();
    v
}

fn certs() -> (tempfile::TempDir, PathBuf) {
    let common::EngineSide { dir, certs, .. } = common::engine_side();
    (dir, certs)
}

fn kubernetes_validate(files: &[PathBuf]) {
    testkit::require_tool("kubernetes-validate");
    for version in ["1.33.0", "1.37.0"] {
        let o = Command::new("kubernetes-validate").args(["--strict", "-k", version]).args(files).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && !out.contains("ERROR"), "kubernetes-validate {version}:\n{out}{}", stderr(&o));
    }
}

/// Every file under `dir`, relative, sorted (the base has a `config/` folder).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = PathBuf::from(p.file_name().unwrap());
        if p.is_dir() {
            v.extend(all_files(&p).into_iter().map(|f| rel.join(f)));
        } else {
            v.push(rel);
        }
    }
    v.sort();
    v
}

/// `kubectl kustomize DIR`: the objects a base builds, as kubectl would apply them.
fn kustomize(dir: &Path) -> (String, Vec<serde_json::Value>) {
    let o = Command::new("kubectl").arg("kustomize").arg(dir).output().unwrap();
    assert!(o.status.success(), "kubectl kustomize {}: {}", dir.display(), stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let docs = text.split("\n---\n").map(|d| serde_yaml::from_str(d).unwrap()).collect();
    (text, docs)
}

/// `render --target k8s` of a deploy.yaml for consoles.example.com with `certs` and `more`:
/// its directory, the file, and the objects kustomize builds from it.
fn render_spec(certs: &Path, more: &str) -> (tempfile::TempDir, PathBuf, Vec<serde_json::Value>) {
    let out = tempfile::tempdir().unwrap();
    let spec = out.path().join("deploy.yaml");
    std::fs::write(&spec, format!("proxyFqdn: consoles.example.com\ncerts: {}\n{more}", certs.display())).unwrap();
    render("k8s", out.path(), &["-f", s(&spec)]);
    let (_, docs) = kustomize(out.path());
    (out, spec, docs)
}

fn kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in {docs:?}"))
}

#[test]
fn manifests_base_is_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    render("k8s", dir.path(), &["--without-secret", "-f", s(&root.join("manifests/deploy.yaml"))]);
    let fresh = all_files(dir.path());
    let checked_in: Vec<_> = all_files(&root.join("manifests")).into_iter().filter(|p| !p.ends_with("deploy.yaml")).collect();
    assert_eq!(fresh, checked_in, "manifests/ files differ: re-render (see manifests/deploy.yaml)");
    for name in &fresh {
        assert_eq!(
            std::fs::read_to_string(dir.path().join(name)).unwrap(),
            std::fs::read_to_string(root.join("manifests").join(name)).unwrap(),
            "manifests/{} is stale: wsproxyctl render --target k8s --without-secret -f manifests/deploy.yaml --out manifests",
            name.display()
        );
    }
    let (text, _) = kustomize(&root.join("manifests"));
    let built = dir.path().join("built.yaml");
    std::fs::write(&built, text).unwrap();
    kubernetes_validate(&[built, root.join("manifests/namespace.yaml")]);
}

/// The base works as kustomize users expect: an overlay's `images:` and `namespace:` apply,
/// nothing pins a pull policy that stops a registry image, the Namespace is not in the base,
/// and an overlay patching the configuration renames the ConfigMap (so the pods roll).
#[test]
fn an_overlay_on_the_manifests_base_sets_image_namespace_and_rolls_on_config_patches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (_, base) = kustomize(&root.join("manifests"));
    assert!(base.iter().all(|d| d["kind"] != "Namespace"), "the base creates no Namespace");
    let base_config = kind(&base, "ConfigMap")["metadata"]["name"].as_str().unwrap().to_string();
    assert!(base_config.starts_with("wsproxy-config-"), "generated name with a hash: {base_config}");

    let overlay = tempfile::tempdir().unwrap();
    let link = overlay.path().join("base");
    std::os::unix::fs::symlink(root.join("manifests"), &link).unwrap();
    std::fs::write(overlay.path().join("extra.conf"), "WSPROXY_MAX_SESSIONS=50\n").unwrap();
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: consoles\nresources: [base]\n\
         images:\n  - name: localhost/ovirt-websocket-proxy\n    newName: quay.io/example/wsproxy\n    newTag: '1.2'\n\
         configMapGenerator:\n  - name: wsproxy-config\n    behavior: merge\n    files: [20-limits.conf=extra.conf]\n",
    )
    .unwrap();
    let (_, built) = kustomize(overlay.path());
    assert!(built.iter().all(|d| d["metadata"]["namespace"] == "consoles"), "every object in the overlay's namespace");
    let pod = &kind(&built, "Deployment")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "quay.io/example/wsproxy:1.2");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent", "a registry image can be pulled");
    let config = kind(&built, "ConfigMap");
    assert!(config["data"]["20-limits.conf"].is_string(), "{config}");
    let name = config["metadata"]["name"].as_str().unwrap();
    assert_ne!(name, base_config, "a patched configuration is a new ConfigMap");
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "config").unwrap();
    assert_eq!(volume["configMap"]["name"], name, "the pods mount the new one, so they roll");
}

#[test]
fn k8s_objects_are_valid_restricted_and_roll_on_certificate_change() {
    let (_keep, certs) = certs();
    let out = tempfile::tempdir().unwrap();
    render(
        "k8s",
        out.path(),
        &[
            "--proxy-fqdn",
            "proxy.example.com",
            "--certs",
            s(&certs),
            "--replicas",
            "3",
            "--replay-store",
            "redis://valkey.consoles.svc:6379",
        ],
    );
    let files = yaml_files(out.path());
    kubernetes_validate(&files);
    let (text, docs) = kustomize(out.path());
    let built = out.path().join("built.yaml");
    std::fs::write(&built, text).unwrap();
    kubernetes_validate(std::slice::from_ref(&built));
    std::fs::remove_file(&built).unwrap();

    let mut kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service"]);
    let secret_file = out.path().join("10-secret.yaml");
    let secret: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(&secret_file).unwrap()).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "engine.cer", "tls.crt", "tls.key"]);
    assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600, "Secret file is private");
    let namespace: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(out.path().join("namespace.yaml")).unwrap()).unwrap();
    assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");

    let dep = &kind(&docs, "Deployment")["spec"];
    assert_eq!(dep["replicas"], 3);
    assert_eq!(dep["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &dep["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    // Ready while /readyz says so (503 from SIGTERM on), alive while /healthz does.
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    // The 5 s notice, the default hour of drain (consoles last hours; the surge pod takes new
    // ones meanwhile) and 10 s for the closes: the kubelet never cuts a drain short.
    assert_eq!(pod["terminationGracePeriodSeconds"], 3615);
    assert!(c["resources"]["limits"]["memory"].is_string() && c["resources"]["requests"]["cpu"].is_string());
    assert_eq!(kind(&docs, "Service")["spec"]["type"], "LoadBalancer");
    assert_eq!(kind(&docs, "NetworkPolicy")["spec"]["ingress"][0]["ports"][0]["port"], 6100);
    let conf = kind(&docs, "ConfigMap")["data"]["10-setup.conf"].as_str().unwrap();
    assert!(conf.contains("SSL_ONLY=True") && conf.contains("CERT_FOR_DATA_VERIFICATION=/etc/wsproxy/certs/engine.cer"), "{conf}");

    // New certificates change the pod template's checksum (the Deployment rolls).
    let checksum = |dir: &Path| -> String {
        let d: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(dir.join("20-deployment.yaml")).unwrap()).unwrap();
        d["spec"]["template"]["metadata"]["annotations"]["wsproxyctl.ovirt.org/certs-checksum"].as_str().unwrap().to_string()
    };
    let before = checksum(out.path());
    let (_keep2, certs2) = self::certs();
    let out2 = tempfile::tempdir().unwrap();
    render(
        "k8s",
        out2.path(),
        &[
            "--proxy-fqdn",
            "proxy.example.com",
            "--certs",
            s(&certs2),
            "--replicas",
            "3",
            "--replay-store",
            "redis://valkey.consoles.svc:6379",
        ],
    );
    assert_ne!(before, checksum(out2.path()));

    // NodePort option.
    let out3 = tempfile::tempdir().unwrap();
    let spec = out3.path().join("deploy.yaml");
    std::fs::write(
        &spec,
        format!("proxyFqdn: proxy.example.com\ncerts: {}\nservice:\n  type: NodePort\n  nodePort: 30610\n", certs.display()),
    )
    .unwrap();
    render("k8s", out3.path(), &["-f", s(&spec)]);
    let svc: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(out3.path().join("30-service.yaml")).unwrap()).unwrap();
    assert_eq!((svc["spec"]["type"].as_str(), svc["spec"]["ports"][0]["nodePort"].as_u64()), (Some("NodePort"), Some(30610)));
    assert_eq!(svc["spec"]["ipFamilyPolicy"], "PreferDualStack", "IPv6 browsers too where the cluster has both families");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local", "the browser's address kept");

    // ClusterIP, for an Ingress, a TLSRoute or a Route in front (no external traffic policy).
    let out4 = tempfile::tempdir().unwrap();
    render("k8s", out4.path(), &["-f", s(&spec), "--service-type", "ClusterIP"]);
    let files = yaml_files(out4.path());
    kubernetes_validate(&files);
    let svc: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(out4.path().join("30-service.yaml")).unwrap()).unwrap();
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(svc["spec"].get("externalTrafficPolicy").is_none(), "{svc}");
}

use std::os::unix::fs::PermissionsExt;

#[test]
fn bad_spec_files_name_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("deploy.yaml");
    std::fs::write(&spec, "proxyFqdn: proxy.example.com\nreplicas: many\n").unwrap();
    let o = ctl(&["render", "--target", "k8s", "--without-secret", "-f", s(&spec), "--out", s(dir.path())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("replicas") && stderr(&o).contains("line 2"), "{}", stderr(&o));
    // Missing certificates: the message says how to make them.
    let o = ctl(&["render", "--target", "k8s", "--proxy-fqdn", "p.example.com", "--certs", "/nonexistent", "--out", s(dir.path())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("wsproxyctl certs issue"), "{}", stderr(&o));
    // config init + schema.
    let init = dir.path().join("init.yaml");
    assert!(ctl(&["config", "init", "--out", s(&init)]).status.success());
    assert_eq!(ctl(&["config", "init", "--out", s(&init)]).status.code(), Some(2), "init refuses to overwrite");
    let schema: serde_json::Value = serde_json::from_slice(&ctl(&["config", "schema"]).stdout).unwrap();
    assert!(schema["properties"]["proxyFqdn"].is_object());
}

#[test]
fn quadlet_unit_passes_quadlet_dryrun_and_its_podman_command_serves_healthz() {
    let common::EngineSide { dir: _keep, pki, certs } = common::engine_side();
    let out = tempfile::tempdir().unwrap();
    let suffix = std::process::id();
    // A local image name so the run below can use the image test's archive.
    let image = format!("localhost/wsproxy-render-test:{suffix}");
    // With a target CA (here the test CA): one more podman secret, named by WSPROXY_TARGET_CA.
    // With the admin listener: its token one more secret. The unit runs on the host's network
    // (a redeploy hands the port over), so the ports are the host's: free ones.
    let spec_file = out.path().join("deploy.yaml");
    let token = out.path().join("admin-token");
    std::fs::write(&token, "5d0c3f6e9a8b7c6d5e4f3a2b1c0d9e8f\n").unwrap();
    let (port, admin_port) = (free_port(), free_port());
    std::fs::write(
        &spec_file,
        format!(
            "proxyFqdn: localhost\nport: {port}\ntargetCa: {}\nadmin: {{port: {admin_port}, tokenFile: admin-token}}\n",
            certs.join("ca.pem").display()
        ),
    )
    .unwrap();
    render("podman", out.path(), &["-f", s(&spec_file), "--certs", s(&certs), "--image", &image]);
    let unit = std::fs::read_to_string(out.path().join("wsproxy.container")).unwrap();
    assert!(!unit.contains("AutoUpdate"), "no auto-update for a local image");
    assert!(unit.contains("Secret=wsproxy-target-ca,"), "{unit}");
    assert!(unit.contains("Secret=wsproxy-admin-token,") && unit.contains("Network=host") && !unit.contains("PublishPort"), "{unit}");
    let pod = std::fs::read_to_string(out.path().join("wsproxy-pod.yaml")).unwrap();
    assert!(pod.contains(&format!("hostPort: {admin_port}")) && pod.contains("wsproxy-admin-token:"), "the kube-play Pod too: {pod}");

    let units = tempfile::tempdir().unwrap();
    std::fs::copy(out.path().join("wsproxy.container"), units.path().join("wsproxy.container")).unwrap();
    let o = Command::new(tool("quadlet")).arg("-dryrun").env("QUADLET_UNIT_DIRS", units.path()).output().unwrap();
    let generated = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "quadlet -dryrun: {}", stderr(&o));
    let exec = generated.lines().find(|l| l.starts_with("ExecStart=")).expect("ExecStart").trim_start_matches("ExecStart=").to_string();
    for flag in [
        "--read-only",
        "--cap-drop all",
        "--security-opt=no-new-privileges",
        "--user 65532:65532",
        "--secret wsproxy-tls-key,uid=65532,gid=65532,mode=0400",
    ] {
        assert!(exec.contains(flag), "{flag} missing from {exec}");
    }
    assert!(generated.contains("Restart=on-failure"));
    // The first start may pull the image: systemd's 90 s default is raised.
    assert!(generated.contains("TimeoutStartSec=900"), "{generated}");

    // AutoUpdate only when asked for, with a registry image; Quadlet accepts it.
    let registry = out.path().join("registry.yaml");
    std::fs::write(&registry, "proxyFqdn: localhost\nimage: registry.example.com/virt/wsproxy:1.2\n").unwrap();
    render("podman", &out.path().join("plain"), &["-f", s(&registry), "--certs", s(&certs)]);
    assert!(!std::fs::read_to_string(out.path().join("plain/wsproxy.container")).unwrap().contains("AutoUpdate"), "off by default");
    std::fs::write(&registry, "proxyFqdn: localhost\nimage: registry.example.com/virt/wsproxy:1.2\npodman: {autoUpdate: true}\n").unwrap();
    render("podman", &out.path().join("auto"), &["-f", s(&registry), "--certs", s(&certs)]);
    let auto_units = tempfile::tempdir().unwrap();
    std::fs::copy(out.path().join("auto/wsproxy.container"), auto_units.path().join("wsproxy.container")).unwrap();
    let o = Command::new(tool("quadlet")).arg("-dryrun").env("QUADLET_UNIT_DIRS", auto_units.path()).output().unwrap();
    assert!(o.status.success(), "quadlet -dryrun: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("io.containers.autoupdate=registry"), "{}", String::from_utf8_lossy(&o.stdout));
    std::fs::write(&registry, format!("proxyFqdn: localhost\nimage: {image}\npodman: {{autoUpdate: true}}\n")).unwrap();
    let o = common::ctl(&["render", "--target", "podman", "-f", s(&registry), "--certs", s(&certs), "--out", s(&out.path().join("no"))]);
    assert_eq!(o.status.code(), Some(2), "a local image cannot auto-update: {}", stderr(&o));
    assert!(stderr(&o).contains("podman.autoUpdate"), "{}", stderr(&o));

    // Run exactly that command (minus the systemd plumbing this host lacks) with real secrets.
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/wsproxy");
    let archive = out.path().join("image.tar");
    let mut build = Command::new(env!("CARGO_BIN_EXE_wsproxyctl"));
    build.current_dir(env!("CARGO_MANIFEST_DIR")).args(["image", "build", "-q", "--out", s(&archive), "--tag", &image]);
    if binary.is_file() {
        build.arg("--binary").arg(&binary);
    }
    assert!(build.status().unwrap().success());
    run(podman().args(["load", "-q", "-i", s(&archive)]));
    let bundle = wsproxyctl::pki::bundle::Bundle::load(&certs).unwrap();
    let spec = wsproxyctl::spec::DeploySpec::load(Some(&spec_file), &wsproxyctl::spec::Overrides::default()).unwrap();
    assert!(String::from_utf8_lossy(&plan_conf(&spec)).contains("WSPROXY_TARGET_CA=/run/secrets/wsproxy-target-ca"));
    let plan = wsproxyctl::render::podman::plan(&spec, &bundle, wsproxyctl::render::podman::Placement::HandOver);
    for secret in &plan.secrets {
        let _ = podman().args(["secret", "rm", &secret.name]).output();
        let f = out.path().join(&secret.name);
        std::fs::write(&f, &secret.data).unwrap();
        run(podman().args(["secret", "create", &secret.name, s(&f)]));
    }
    let cid = out.path().join("cid");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(2) // "/usr/bin/podman run"
        .filter(|a| !a.starts_with("--cgroups=") && !a.starts_with("--sdnotify=") && !a.starts_with("--cidfile="))
        .map(str::to_string)
        .collect();
    let _ = podman().args(["rm", "-f", "wsproxy"]).output();
    let o = podman().arg("run").arg(format!("--cidfile={}", cid.display())).args(&args).output().unwrap();
    let cleanup = || {
        let _ = podman().args(["rm", "-f", "wsproxy"]).output();
        for secret in &plan.secrets {
            let _ = podman().args(["secret", "rm", &secret.name]).output();
        }
        let _ = podman().args(["rmi", "-f", &image]).output();
    };
    if !o.status.success() {
        cleanup();
        panic!("podman run {args:?}: {}", stderr(&o));
    }
    let last = common::wait_healthz(port, &certs.join("ca.pem"));
    let admin = admin_answers(&pki, &certs, &token, admin_port);
    let logs = podman().args(["logs", "wsproxy"]).output().unwrap();
    cleanup();
    assert_eq!(last, Ok((200, "ok\n".to_string())), "{}", stderr(&logs));
    assert_eq!(admin, ["no open sessions", "no open sessions", "refused"], "{}", stderr(&logs));
}

/// `sessions list` at the unit's admin port, with a client certificate from the engine CA,
/// with the token file, and with a token the relay does not know: what each got.
fn admin_answers(pki: &testkit::Pki, certs: &Path, token: &Path, port: u16) -> Vec<&'static str> {
    let o = ctl(&["certs", "issue", "--client", "ops", "--ca-cert", s(&pki.ca_cert), "--ca-key", s(&pki.ca_key), "--out", s(certs)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let wrong = certs.join("wrong-token");
    std::fs::write(&wrong, "00000000000000000000000000000000").unwrap();
    let url = format!("https://localhost:{port}");
    let [ca, cert, key] = ["ca.pem", "admin-ops.cer", "admin-ops.key"].map(|f| certs.join(f));
    let base = ["sessions", "list", "--admin", &url, "--ca", s(&ca)];
    let cert = ["--client-cert", s(&cert), "--client-key", s(&key)];
    [&cert[..], &["--token-file", s(token)], &["--token-file", s(&wrong)]]
        .iter()
        .map(|how| {
            let o = ctl(&[&base[..], how].concat());
            match (o.status.code(), common::stdout(&o)) {
                (Some(0), text) if text.contains("no open sessions") => "no open sessions",
                (Some(2), _) if stderr(&o).contains("refused the credentials") => "refused",
                _ => panic!("sessions list {how:?}: {}{}", common::stdout(&o), stderr(&o)),
            }
        })
        .collect()
}

#[test]
fn kube_play_pod_manifest_is_a_valid_pod_and_secret() {
    let (_keep, certs) = certs();
    let out = tempfile::tempdir().unwrap();
    render("podman", out.path(), &["--proxy-fqdn", "localhost", "--certs", s(&certs)]);
    let text = std::fs::read_to_string(out.path().join("wsproxy-pod.yaml")).unwrap();
    let docs: Vec<&str> = text.split("\n---\n").skip(1).collect();
    assert_eq!(docs.len(), 2);
    let mut files = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let f = out.path().join(format!("doc{i}.yaml"));
        std::fs::write(&f, d).unwrap();
        files.push(f);
    }
    kubernetes_validate(&files);
    assert!(text.contains("readOnlyRootFilesystem: true") && text.contains("hostPort: 6100"));
    // The drain (30 s on podman) and 10 s for the closes, as the other two podman forms.
    assert!(text.contains("terminationGracePeriodSeconds: 40"), "{text}");
}

/// The relay configuration the podman plan puts in its secret.
fn plan_conf(spec: &wsproxyctl::spec::DeploySpec) -> Vec<u8> {
    wsproxyctl::render::podman::conf(spec, wsproxyctl::render::podman::Placement::InPlace).into_bytes()
}

/// The ways in besides the Service: an Ingress for ingress-nginx (validated by
/// kubernetes-validate), a Gateway API TLSRoute (validated against Gateway API's published
/// schema), an OpenShift Route (validated against OpenShift's OpenAPI document); each at proxyFqdn, to the Service's TLS port, with timeouts of
/// hours; passthrough unless the Ingress re-encrypts with the proxy certificate.
#[test]
fn ingress_tls_route_and_openshift_route_lead_to_the_relay_with_tls_intact() {
    let (_keep, certs) = certs();
    let (out, spec, docs) = render_spec(
        &certs,
        "service: {type: ClusterIP}\nexpose:\n  ingress: {className: nginx}\n  \
         tlsRoute: {gateway: edge, gatewayNamespace: gateways, sectionName: tls-passthrough}\n  openshiftRoute: true\n",
    );
    let ingress = kind(&docs, "Ingress");
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/ssl-passthrough"], "true");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"], "14400");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "consoles.example.com");
    assert_eq!(rule["http"]["paths"][0]["backend"]["service"], serde_json::json!({"name": "wsproxy", "port": {"name": "wss"}}));
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "wsproxy-certs");
    let service = kind(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "wss", "the port the ways in name");

    let route = kind(&docs, "TLSRoute");
    assert_eq!(
        route["spec"]["parentRefs"][0],
        serde_json::json!({"name": "edge", "namespace": "gateways", "sectionName": "tls-passthrough"})
    );
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0], serde_json::json!({"name": "wsproxy", "port": 6100}));
    let openshift = kind(&docs, "Route");
    assert_eq!(openshift["spec"]["tls"]["termination"], "passthrough");
    assert_eq!(openshift["spec"]["to"]["name"], "wsproxy");
    assert_eq!(openshift["spec"]["port"]["targetPort"], "wss");
    assert_eq!(openshift["metadata"]["annotations"]["haproxy.router.openshift.io/timeout"], "14400s");

    // Validated: the core kinds by kubernetes-validate, the TLSRoute by Gateway API's schema,
    // the Route by OpenShift's.
    let core: Vec<&serde_json::Value> = docs.iter().filter(|d| d["kind"] != "TLSRoute" && d["kind"] != "Route").collect();
    let core_file = out.path().join("core.json");
    std::fs::write(&core_file, serde_json::to_string(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": core})).unwrap())
        .unwrap();
    kubernetes_validate(&[core_file]);
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas");
    assert!(schemas.join("node_modules/@kubernetes-models/gateway-api").is_dir(), "run `bash scripts/test.sh`, which installs it");
    let published_file = out.path().join("published.json");
    let validate = |objects: &[&serde_json::Value]| {
        std::fs::write(&published_file, serde_json::to_string(objects).unwrap()).unwrap();
        Command::new("node").arg(schemas.join("validate.mjs")).arg(&published_file).output().unwrap()
    };
    let o = validate(&[route, openshift]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("route.openshift.io/v1/Route wsproxy: valid"), "{}", stderr(&o));
    // The validator refuses what the schemas do (so the check above can fail): a bad host
    // name, a misspelt field, a field of the wrong type.
    let mut broken = route.clone();
    broken["spec"]["hostnames"][0] = serde_json::json!("Not_A_Host!");
    assert_eq!(validate(&[&broken]).status.code(), Some(1));
    let mut misspelt = openshift.clone();
    let tls = misspelt["spec"]["tls"].as_object_mut().unwrap();
    let termination = tls.remove("termination").unwrap();
    tls.insert("terminaton".into(), termination);
    let o = validate(&[&misspelt]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("/spec/tls must have required property 'termination'"), "{}", stderr(&o));
    let mut mistyped = openshift.clone();
    mistyped["spec"]["port"]["targetPort"] = serde_json::json!({"name": "wss"});
    assert_eq!(validate(&[&mistyped]).status.code(), Some(1));

    // Re-encrypting: no passthrough; ingress-nginx presents the proxy certificate.
    std::fs::write(
        &spec,
        format!("proxyFqdn: consoles.example.com\ncerts: {}\nexpose: {{ingress: {{tls: Reencrypt}}}}\n", certs.display()),
    )
    .unwrap();
    let out2 = tempfile::tempdir().unwrap();
    render("k8s", out2.path(), &["-f", s(&spec)]);
    let (_, docs) = kustomize(out2.path());
    let ingress = kind(&docs, "Ingress");
    assert!(ingress["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/ssl-passthrough").is_none(), "{ingress}");
    assert_eq!(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");
}

/// certManager: a cert-manager Certificate (valid by cert-manager's published schema) makes the
/// relay's certificate; no Secret of ours; the engine certificate, which the relay still needs,
/// travels in the ConfigMap, where the relay's configuration names it.
#[test]
fn cert_manager_makes_the_certificate_and_the_engine_certificate_rides_in_the_config() {
    let (_keep, certs) = certs();
    let (out, spec, docs) = render_spec(&certs, "certManager: {issuer: consoles-ca, issuerKind: ClusterIssuer}\n");
    assert!(docs.iter().all(|d| d["kind"] != "Secret"), "cert-manager writes the Secret, not render");
    let cert = kind(&docs, "Certificate");
    assert_eq!(cert["spec"]["secretName"], "wsproxy-certs");
    assert_eq!(cert["spec"]["dnsNames"], serde_json::json!(["consoles.example.com"]));
    assert_eq!(cert["spec"]["issuerRef"], serde_json::json!({"name": "consoles-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}));
    let config = kind(&docs, "ConfigMap");
    let engine = config["data"]["engine.cer"].as_str().unwrap();
    assert!(engine.starts_with("-----BEGIN CERTIFICATE-----"), "{engine}");
    let conf = config["data"]["10-setup.conf"].as_str().unwrap();
    assert!(conf.contains("CERT_FOR_DATA_VERIFICATION=/etc/wsproxy/conf.d/engine.cer"), "{conf}");
    let pod = &kind(&docs, "Deployment")["spec"]["template"]["spec"];
    let certs_volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "certs").unwrap();
    let keys: Vec<&str> = certs_volume["secret"]["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["tls.crt", "tls.key"], "only what cert-manager's Secret surely holds");

    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas");
    let file = out.path().join("certificate.json");
    std::fs::write(&file, serde_json::to_string(&[cert]).unwrap()).unwrap();
    let o = Command::new("node").arg(schemas.join("validate.mjs")).arg(&file).output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let core: Vec<&serde_json::Value> = docs.iter().filter(|d| d["kind"] != "Certificate").collect();
    let core_file = out.path().join("core.json");
    std::fs::write(&core_file, serde_json::to_string(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": core})).unwrap())
        .unwrap();
    kubernetes_validate(&[core_file]);

    // podman hosts are refused rather than given a certificate nobody makes.
    let o = common::ctl(&["render", "--target", "podman", "-f", s(&spec), "--out", s(&out.path().join("podman"))]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("certManager"), "{}", stderr(&o));
}
