//! `wsproxyctl`: the operator's CLI. Parses the command line, runs one verb, maps failures to
//! the documented exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use wsproxyctl::cli::{self, Certs, Cli, Command, ConfigCmd, Image, Target};
use wsproxyctl::error::{Failure, Result};
use wsproxyctl::output::{self, Output};
use wsproxyctl::pki::bundle::Bundle;
use wsproxyctl::spec::DeploySpec;
use wsproxyctl::{demo, deploy, fsutil, image, pki, render, spec, verify};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    if matches!(cli.command, Command::Config(_) | Command::Completions { .. } | Command::Manpage { .. }) {
        // Verbs that only print: end quietly when the reader goes away (`wsproxyctl config
        // schema | head`), like other command-line tools, instead of panicking on a broken
        // pipe. Not for the others: a network verb must never be killed by a peer closing.
        // SAFETY: setting a signal disposition to its default before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let format = if cli.json { output::Format::Json } else { cli.output.unwrap_or_default() };
    let out = Output::new(format, cli.quiet, cli.verbose);
    if cli.verbose {
        // Debug lines of wsproxyctl and of the in-process relay (demo) on stderr.
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let ours = tracing_subscriber::filter::Targets::new()
            .with_target("wsproxyctl", tracing::Level::DEBUG)
            .with_target("wsproxy", tracing::Level::DEBUG)
            .with_default(tracing::Level::WARN);
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(out.colour()).with_target(false))
            .with(ours)
            .init();
    }
    match run(cli, &out) {
        Ok(code) => code,
        Err(failure) => {
            out.error(&failure);
            ExitCode::from(failure.exit_code())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::environment(format!("cannot start the async runtime: {e}")))
}

/// One function per verb; each turns its arguments into the library's options, runs it and
/// reports (text from the report's `Display`, or JSON). Layout after ripgrep's thin main.
fn run(cli: Cli, out: &Output) -> Result<ExitCode> {
    match cli.command {
        Command::Certs(Certs::Issue(a)) => certs_issue(a, out),
        Command::Certs(Certs::Request(a)) => certs_request(a, out),
        Command::Certs(Certs::Sign(a)) => certs_sign(a, out),
        Command::Certs(Certs::Fetch(a)) => certs_fetch(a, out),
        Command::Certs(Certs::Inspect(a)) => certs_inspect(a, out),
        Command::Demo(a) => demo(a, out),
        Command::Image(Image::Build(a)) => image_build(a, out),
        Command::Deploy(a) => deploy(*a, out),
        Command::Undeploy(a) => undeploy(a, out),
        Command::Logs(a) => logs(a),
        Command::Status(a) => status(a, out),
        Command::Render(a) => render(a, out),
        Command::Verify(a) => verify(a, out),
        Command::Config(ConfigCmd::Schema { helm }) => config_schema(helm),
        Command::Config(ConfigCmd::Init { out: path }) => config_init(&path, out),
        Command::Sessions(cli::SessionsCmd::List(a)) => sessions_list(a, out),
        Command::Sessions(cli::SessionsCmd::Kill(a)) => sessions_kill(a, out),
        Command::Completions { shell } => completions(shell),
        Command::Manpage { out: dir } => manpage(&dir, out),
    }
}

/// Exit 0 when `ok`, else 1 (a check found a problem; the report says which).
fn checked(ok: bool) -> Result<ExitCode> {
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The files a verb wrote, one `wrote` line each.
fn report_files(out: &Output, files: &[PathBuf]) {
    out.report(&serde_json::json!({ "files": files }), || files.iter().map(|p| format!("wrote {}\n", p.display())).collect());
}

fn sessions_list(a: cli::AdminArgs, out: &Output) -> Result<ExitCode> {
    let listing = runtime()?.block_on(wsproxyctl::sessions::list(&a.into()))?;
    out.report(&listing, || listing.to_string());
    Ok(ExitCode::SUCCESS)
}

fn sessions_kill(a: cli::KillArgs, out: &Output) -> Result<ExitCode> {
    let which = wsproxyctl::sessions::KillSelector { id: a.id, target: a.target, client: a.client };
    let ended = runtime()?.block_on(wsproxyctl::sessions::kill(&a.admin.into(), &which))?;
    out.report(&ended, || ended.to_string());
    Ok(ExitCode::SUCCESS)
}

fn certs_issue(a: cli::IssueArgs, out: &Output) -> Result<ExitCode> {
    let issued = pki::issue::run(&a.into())?;
    out.report(&issued, || issued.to_string());
    checked(true)
}

fn certs_request(a: cli::RequestArgs, out: &Output) -> Result<ExitCode> {
    let files = pki::csr::request(&a.fqdn, &a.sans, &a.out, a.key_type, a.force)?;
    out.report(&serde_json::json!({ "files": files }), || {
        let mut s: String = files.iter().map(|f| format!("wrote {}\n", f.display())).collect();
        s += "next: copy websocket-proxy.req to the engine and run `wsproxyctl certs sign` there\n";
        s
    });
    checked(true)
}

fn certs_sign(a: cli::SignArgs, out: &Output) -> Result<ExitCode> {
    let ca = pki::issue::Ca::load(&a.ca_cert, &a.ca_key)?;
    let (pem, signed, note) = pki::csr::sign(&ca, &a.csr, &a.fqdn, &a.sans, a.days)?;
    fsutil::write_atomic(&a.out, pem.as_bytes(), 0o644)?;
    out.report(&serde_json::json!({ "signed": signed, "out": a.out, "note": note }), || {
        format!(
            "signed {} for CN={} names={}\nwrote {}\n{}",
            a.csr.display(),
            signed.common_name.clone().unwrap_or_default(),
            signed.sans.join(", "),
            a.out.display(),
            note.map(|n| format!("note: {n}\n")).unwrap_or_default()
        )
    });
    checked(true)
}

fn certs_fetch(a: cli::FetchArgs, out: &Output) -> Result<ExitCode> {
    let fetched = runtime()?.block_on(pki::fetch::run(&a.engine, a.trust(), &a.out))?;
    out.report(&fetched, || fetched.to_string());
    checked(true)
}

fn certs_inspect(a: cli::InspectArgs, out: &Output) -> Result<ExitCode> {
    let report = pki::inspect::run(&a.dir);
    out.report(&report, || report.to_string());
    checked(report.ok)
}

fn demo(a: cli::DemoArgs, out: &Output) -> Result<ExitCode> {
    let once = a.once;
    let report = runtime()?.block_on(demo::run(a.into(), out))?;
    if once {
        out.report(&report, || report.to_string());
    }
    checked(report.verify.ok)
}

fn image_build(a: cli::ImageBuildArgs, out: &Output) -> Result<ExitCode> {
    let cwd = std::env::current_dir().map_err(|e| Failure::environment("cannot read the current directory").with_source(e))?;
    let binary = match a.binary {
        Some(b) => b,
        None => {
            out.step("==> building the static relay (cargo build --release, +crt-static)");
            image::build_static_binary(&cwd)?
        }
    };
    let built = image::build(&binary, &a.out, &a.tag, &image::Labels::for_checkout(&cwd))?;
    out.report(&built, || built.to_string());
    checked(true)
}

fn deploy(a: cli::DeployArgs, out: &Output) -> Result<ExitCode> {
    a.check_target_flags().map_err(Failure::usage)?;
    let mut overrides = a.spec.overrides();
    if let [host] = a.place.host.as_slice() {
        overrides.podman_host = Some(host.clone());
    }
    overrides.identity = a.place.identity.clone();
    let mut spec = DeploySpec::load(a.spec.file.as_deref(), &overrides)?;
    spec.warnings().iter().for_each(|w| out.warn(w));
    let opts = deploy::DeployOptions::from(&a);
    // The hosts: --host flags, else deploy.yaml's podman.hosts (one of them is just a host).
    let hosts = if a.place.host.is_empty() { std::mem::take(&mut spec.podman.hosts) } else { a.place.host.clone() };
    if let [host] = hosts.as_slice() {
        spec.podman.host = Some(host.clone());
    }
    let several = hosts.len() > 1;
    if several && a.place.target == Target::K8s {
        return Err(Failure::usage("podman.hosts lists podman hosts: drop it for --target k8s"));
    }
    if a.dry_run && a.place.target == Target::Podman {
        if several {
            let plans = runtime()?.block_on(deploy::several_hosts::plans(&spec, &hosts, &opts, out))?;
            out.report(&plans, || plans.iter().map(|p| p.to_string()).collect());
            return checked(true);
        }
        let plan = runtime()?.block_on(deploy::podman_plan::plan(&spec, &opts, out))?;
        out.report(&plan, || plan.to_string());
        return checked(true);
    }
    if several && a.place.target == Target::Podman {
        let report = runtime()?.block_on(deploy::several_hosts::to_podman_hosts(&spec, &hosts, &opts, out))?;
        out.report(&report, || report.to_string());
        return checked(true);
    }
    let report = match a.place.target {
        Target::Podman => runtime()?.block_on(deploy::to_podman(&spec, &opts, out))?,
        Target::K8s => runtime()?.block_on(deploy::to_kubernetes(&spec, &opts, &deploy::K8sOptions::from(&a), out))?,
    };
    out.report(&report, || report.to_string());
    checked(true)
}

fn status(a: cli::StatusArgs, out: &Output) -> Result<ExitCode> {
    a.check_target_flags().map_err(Failure::usage)?;
    let admin = a.admin_options();
    let status = runtime()?.block_on(async {
        let status = match a.place.target {
            Target::Podman => {
                deploy::status::podman(a.place.host.first().map(String::as_str), a.place.identity.as_deref(), a.connect_to.as_deref()).await
            }
            Target::K8s => {
                let kube = deploy::k8s::client(a.place.context.as_deref(), a.place.kubeconfig.as_deref()).await?;
                let namespace = a.namespace.or(kube.namespace).unwrap_or_else(|| spec::DEFAULT_NAMESPACE.into());
                deploy::status::kubernetes(&kube.client, &namespace, a.connect_to.as_deref()).await
            }
        }?;
        Ok::<_, Failure>(match &admin {
            Some(admin) => status.count_sessions(admin).await,
            None => status,
        })
    })?;
    out.report(&status, || status.to_string());
    checked(status.ok)
}

fn logs(a: cli::LogsArgs) -> Result<ExitCode> {
    a.check_target_flags().map_err(Failure::usage)?;
    let opts = deploy::logs::LogsOptions { follow: a.follow, since: a.since };
    let mut stdout = std::io::stdout().lock();
    runtime()?.block_on(async {
        match a.place.target {
            Target::Podman => {
                deploy::logs::podman(a.place.host.first().map(String::as_str), a.place.identity.as_deref(), &opts, &mut stdout).await
            }
            Target::K8s => {
                let kube = deploy::k8s::client(a.place.context.as_deref(), a.place.kubeconfig.as_deref()).await?;
                let namespace = a.namespace.or(kube.namespace).unwrap_or_else(|| spec::DEFAULT_NAMESPACE.into());
                deploy::logs::kubernetes(&kube.client, &namespace, &opts, &mut stdout).await
            }
        }
    })?;
    checked(true)
}

fn undeploy(a: cli::UndeployArgs, out: &Output) -> Result<ExitCode> {
    a.check_target_flags().map_err(Failure::usage)?;
    let removed = match a.place.target {
        Target::Podman => runtime()?.block_on(deploy::several_hosts::undeploy(
            &a.place.host,
            a.place.identity.as_deref(),
            a.place.quadlet_dir.as_deref(),
        ))?,
        Target::K8s => runtime()?.block_on(async {
            let kube = deploy::k8s::client(a.place.context.as_deref(), a.place.kubeconfig.as_deref()).await?;
            // As kubectl: the flag, else the context's namespace; else where deploy puts it.
            let namespace = a.namespace.or(kube.namespace).unwrap_or_else(|| spec::DEFAULT_NAMESPACE.into());
            deploy::k8s::undeploy(&kube.client, &namespace).await
        })?,
    };
    out.report(&removed, || removed.to_string());
    checked(removed.failed.is_empty())
}

fn render(a: cli::RenderArgs, out: &Output) -> Result<ExitCode> {
    let spec = DeploySpec::load(a.spec.file.as_deref(), &a.spec.overrides())?;
    spec.warnings().iter().for_each(|w| out.warn(w));
    let files = match (a.target, a.without_secret) {
        (Target::K8s, true) => {
            spec.check_k8s()?;
            render::k8s::files(&spec, None)
        }
        (Target::K8s, false) => {
            spec.check_k8s()?;
            // With certManager the Secret is cert-manager's to write: nothing to load.
            let bundle = if spec.cert_manager.is_some() { None } else { Some(Bundle::load(&spec.certs)?) };
            render::k8s::files(&spec, bundle.as_ref())
        }
        (Target::Podman, true) => return Err(Failure::usage("--without-secret applies to --target k8s only")),
        (Target::Podman, false) => {
            spec.check_podman()?;
            render::podman::files(&spec, &Bundle::load(&spec.certs)?)
        }
    };
    report_files(out, &render::write_all(&a.out, &files)?);
    checked(true)
}

fn verify(a: cli::VerifyArgs, out: &Output) -> Result<ExitCode> {
    let report = runtime()?.block_on(verify::run(a.into()))?;
    out.report(&report, || report.to_string());
    checked(report.ok)
}

fn config_schema(helm: bool) -> Result<ExitCode> {
    let schema = if helm { render::helm::values_schema() } else { spec::json_schema() };
    println!("{}", serde_json::to_string_pretty(&schema).expect("a JSON value always serializes"));
    checked(true)
}

fn config_init(path: &Path, out: &Output) -> Result<ExitCode> {
    if path.exists() {
        return Err(Failure::usage(format!("{} exists: not overwriting it", path.display())));
    }
    fsutil::write_atomic(path, spec::EXAMPLE.as_bytes(), 0o644)?;
    out.report(&serde_json::json!({ "file": path }), || format!("wrote {}\n", path.display()));
    checked(true)
}

fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "wsproxyctl", &mut std::io::stdout());
    checked(true)
}

/// One man page for wsproxyctl and one per verb.
fn manpage(dir: &Path, out: &Output) -> Result<ExitCode> {
    use clap::CommandFactory;
    fsutil::ensure_dir(dir)?;
    let cmd = Cli::command();
    let mut pages = vec![(format!("{}.1", cmd.get_name()), cmd.clone())];
    for sub in cmd.get_subcommands() {
        pages
            .push((format!("{}-{}.1", cmd.get_name(), sub.get_name()), sub.clone().name(format!("{}-{}", cmd.get_name(), sub.get_name()))));
    }
    let mut written = Vec::new();
    for (name, page) in pages {
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf).map_err(|e| Failure::environment("cannot render a man page").with_source(e))?;
        let path = dir.join(name);
        fsutil::write_atomic(&path, &buf, 0o644)?;
        written.push(path);
    }
    report_files(out, &written);
    checked(true)
}
