//! `wsproxyctl logs`: the relay's own log where it runs, as `podman logs wsproxy` or
//! `kubectl logs -l ...` would print it, without a shell on the host: from the podman API (over
//! ssh like deploy) or from every relay pod (each line prefixed with its pod, as kubectl's
//! `--prefix`). `--since` bounds the start, `--follow` keeps printing until interrupted.

use std::io::Write;
use std::time::Duration;

use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use crate::error::{Failure, Result};

/// What to print.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    pub since: Option<Duration>,
}

/// The relay container's log on a podman host, written to `out` as it arrives.
pub async fn podman(host: Option<&str>, identity: Option<&std::path::Path>, opts: &LogsOptions, out: &mut impl Write) -> Result<()> {
    let docker = super::podman::connect(host, identity).await?;
    let name = crate::render::podman::CONTAINER_NAME;
    let ours = super::podman::managed_label_values(&docker, crate::render::podman::OWNER_LABEL).await?;
    if ours.is_empty() {
        return Err(Failure::check(format!(
            "no relay deployed by wsproxyctl on {}: `wsproxyctl deploy --target podman` first",
            super::podman::describe_host(host)
        )));
    }
    let since = opts
        .since
        .map_or(0, |d| (std::time::SystemTime::now() - d).duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.as_secs() as i64));
    let options = bollard::query_parameters::LogsOptions {
        follow: opts.follow,
        stdout: true,
        stderr: true,
        since: since as i32,
        tail: "all".into(),
        ..Default::default()
    };
    let mut stream = docker.logs(name, Some(options));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure::environment(format!("reading the log of {name}: {e}")))?;
        write!(out, "{chunk}").and_then(|_| out.flush()).map_err(|e| Failure::environment(format!("writing the log: {e}")))?;
    }
    Ok(())
}

/// Every relay pod's log in `namespace`, each line prefixed with `[pod]`; with `follow`, the
/// pods' streams interleaved as lines arrive.
pub async fn kubernetes(client: &kube::Client, namespace: &str, opts: &LogsOptions, out: &mut impl Write) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&crate::render::pod_selector());
    let list = pods.list(&selector).await.map_err(|e| Failure::environment(format!("listing the relay's pods in {namespace}: {e}")))?;
    let names: Vec<String> = list.items.into_iter().filter_map(|p| p.metadata.name).collect();
    if names.is_empty() {
        return Err(Failure::check(format!(
            "no relay pods in namespace {namespace}: `wsproxyctl deploy --target k8s` first (or -n NAMESPACE)"
        )));
    }
    let params = LogParams {
        container: Some("wsproxy".into()),
        follow: opts.follow,
        since_seconds: opts.since.map(|d| d.as_secs().max(1) as i64),
        ..Default::default()
    };
    let mut streams = Vec::new();
    for name in &names {
        let lines =
            pods.log_stream(name, &params).await.map_err(|e| Failure::environment(format!("reading the log of pod {name}: {e}")))?;
        let prefix = format!("[{name}] ");
        streams.push(lines.lines().map_ok(move |line| format!("{prefix}{line}")).boxed());
    }
    let mut all = futures_util::stream::select_all(streams);
    while let Some(line) = all.next().await {
        let line = line.map_err(|e| Failure::environment(format!("reading a pod's log: {e}")))?;
        writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| Failure::environment(format!("writing the log: {e}")))?;
    }
    Ok(())
}
