//! `demo --podman`: the relay of the demo in a container on this machine's podman instead of
//! in-process: the image (built from this checkout, or `--image-archive`), the same hardened
//! container `deploy --target podman` creates, on the host's network so it reaches the demo's
//! VNC server on loopback. If no podman API socket answers, a private `podman system service`
//! is started for the demo and stopped with it. Everything is removed at the end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;

use crate::deploy::podman::{self, Extras};
use crate::error::{Failure, Result};
use crate::output::Output;
use crate::pki::bundle::Bundle;
use crate::spec::{DeploySpec, Overrides};

/// The demo container's name (its volume is `wsproxy-demo-certs`): never the deployed relay's.
pub const CONTAINER: &str = "wsproxy-demo";
const IMAGE: &str = "localhost/wsproxy:demo";
/// Where a noVNC directory is mounted inside the container.
const NOVNC_INSIDE: &str = "/srv/novnc";

/// A running demo relay in podman; [`PodmanRelay::stop`] removes it.
pub struct PodmanRelay {
    docker: Docker,
    _service: Option<ApiService>,
    pub port: u16,
}

/// A `podman system service` started for the demo, killed on drop.
struct ApiService(std::process::Child);

impl Drop for ApiService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connect to the local podman API, or start a private one in `dir`.
async fn api(dir: &Path, out: &Output) -> Result<(Docker, Option<ApiService>)> {
    if let Ok(docker) = podman::connect(None, None).await {
        return Ok((docker, None));
    }
    let socket = dir.join("podman.sock");
    let child = std::process::Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            Failure::environment(format!("--podman: cannot run podman ({e}): install it (apt-get install podman) or drop --podman"))
        })?;
    let service = ApiService(child);
    out.step(&format!("==> started a private podman API at {}", socket.display()));
    let uri = format!("unix://{}", socket.display());
    for _ in 0..100 {
        if socket.exists() {
            if let Ok(docker) = podman::connect(Some(&uri), None).await {
                return Ok((docker, Some(service)));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Failure::environment("--podman: podman's API did not come up within 10 s (try `podman info` to see why)"))
}

/// The image archive: the given one, or built from this checkout.
fn image_archive(given: Option<&Path>, dir: &Path, out: &Output) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| Failure::environment(e.to_string()))?;
    out.step("==> building the relay image (static relay from this checkout; once, then cargo's cache)");
    let binary = crate::image::build_static_binary(&cwd)
        .map_err(|e| Failure::usage(format!("{}; or pass --image-archive from `wsproxyctl image build`", e.message)))?;
    let archive = dir.join("wsproxy-image.tar");
    crate::image::build(&binary, &archive, IMAGE, &crate::image::Labels::for_checkout(&cwd))?;
    Ok(archive)
}

/// Start the demo relay in podman with the demo's certificates; listens on 127.0.0.1:`port`.
pub async fn start(dir: &Path, certs: &Path, port: u16, novnc: Option<&Path>, archive: Option<&Path>, out: &Output) -> Result<PodmanRelay> {
    // podman first: a machine without it hears so before waiting for an image build.
    let (docker, service) = api(dir, out).await?;
    let archive = image_archive(archive, dir, out)?;
    let image = crate::image::reference_in(&archive)?;
    podman::ensure_image(&docker, &image, Some(&archive), false).await?;
    let spec = DeploySpec::load(
        None,
        &Overrides {
            proxy_fqdn: Some("localhost".into()),
            certs: Some(certs.to_path_buf()),
            port: Some(port),
            image: Some(image.clone()),
            ..Default::default()
        },
    )?;
    let bundle = Bundle::load(certs)?;
    let mut plan = crate::render::podman::plan(&spec, &bundle, crate::render::podman::Placement::InPlace);
    plan.name = CONTAINER.into();
    // On the host's network: listen on loopback only, and serve noVNC if given.
    for secret in plan.secrets.iter_mut().filter(|s| s.name == crate::render::podman::CONF_SECRET) {
        let mut conf = String::from_utf8_lossy(&secret.data).replace("PROXY_HOST=*", "PROXY_HOST=127.0.0.1");
        if novnc.is_some() {
            conf.push_str(&format!("WSPROXY_NOVNC_DIR={NOVNC_INSIDE}\n"));
        }
        secret.data = conf.into_bytes();
    }
    let extras =
        Extras { host_network: true, binds: novnc.map(|d| vec![(d.display().to_string(), NOVNC_INSIDE.to_string())]).unwrap_or_default() };
    podman::remove_one(&docker, CONTAINER).await;
    podman::apply(&docker, &plan, &extras).await?;
    // Running is not yet listening: wait for the port (the relay binds within milliseconds).
    let mut listening = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !listening {
        let logs = podman::logs(&docker, CONTAINER).await;
        podman::remove_one(&docker, CONTAINER).await;
        return Err(Failure::environment(format!("the relay container does not listen on 127.0.0.1:{port}; its log:\n{logs}")));
    }
    out.step(&format!("==> relay running in podman container {CONTAINER} ({image}: read-only root, uid 65532, no capabilities)"));
    Ok(PodmanRelay { docker, _service: service, port })
}

impl PodmanRelay {
    /// The relay's last log lines (when verify fails).
    pub async fn logs(&self) -> String {
        podman::logs(&self.docker, CONTAINER).await
    }

    /// Remove the container and its volume (and stop a private API service).
    pub async fn stop(self) {
        podman::remove_one(&self.docker, CONTAINER).await;
    }
}
