//! `wsproxyctl`: the operator's CLI. Parses the command line, runs one verb, maps failures to
//! the documented exit codes.

use std::process::ExitCode;

use clap::Parser;

use wsproxyctl::cli::{Certs, Cli, Command, ConfigCmd, Image, Target};
use wsproxyctl::error::{Failure, Result};
use wsproxyctl::output::Output;
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
    let out = Output::new(cli.json, cli.quiet, cli.verbose);
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

fn run(cli: Cli, out: &Output) -> Result<ExitCode> {
    match cli.command {
        Command::Certs(Certs::Issue(a)) => {
            let issued = pki::issue::run(&pki::issue::IssueArgs {
                ca_cert: a.ca_cert,
                ca_key: a.ca_key,
                fqdn: a.fqdn,
                sans: a.sans,
                out: a.out,
                engine_cert: a.engine_cert,
                days: a.days,
                key_type: a.key_type,
                force: a.force,
            })?;
            out.report(&issued, || {
                let mut s = format!("issued a certificate for {} (names: {})\n", issued.fqdn, issued.sans.join(", "));
                s += &format!("  valid until {}\n  sha256 {}\n", issued.not_after, issued.fingerprint);
                for f in &issued.files {
                    s += &format!("  wrote {}\n", f.display());
                }
                for n in &issued.notes {
                    s += &format!("  note: {n}\n");
                }
                s
            });
        }
        Command::Certs(Certs::Request(a)) => {
            let files = pki::csr::request(&a.fqdn, &a.sans, &a.out, a.key_type, a.force)?;
            out.report(&serde_json::json!({ "files": files }), || {
                let mut s = String::new();
                for f in &files {
                    s += &format!("wrote {}\n", f.display());
                }
                s += "next: copy websocket-proxy.req to the engine and run `wsproxyctl certs sign` there\n";
                s
            });
        }
        Command::Certs(Certs::Sign(a)) => {
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
        }
        Command::Certs(Certs::Fetch(a)) => {
            let trust = match (a.ca_fingerprint, a.ca_cert) {
                (Some(fp), _) => Some(pki::fetch::Trust::Fingerprint(fp)),
                (None, Some(f)) => Some(pki::fetch::Trust::CaFile(f)),
                (None, None) => None,
            };
            let fetched = runtime()?.block_on(pki::fetch::run(&a.engine, trust, &a.out))?;
            out.report(&fetched, || {
                let mut s = format!("engine CA {}\nengine certificate {}\n", fetched.ca_fingerprint, fetched.engine_subject);
                for f in &fetched.files {
                    s += &format!("wrote {}\n", f.display());
                }
                s
            });
        }
        Command::Demo(a) => {
            let once = a.once;
            let report = runtime()?.block_on(demo::run(
                demo::DemoArgs {
                    dir: a.dir,
                    port: a.port,
                    novnc: a.novnc,
                    builtin_vnc: a.builtin_vnc,
                    once,
                    podman: a.podman,
                    image_archive: a.image_archive,
                },
                out,
            ))?;
            if once {
                out.report(&report, || demo::render(&report));
            }
            if !report.verify.ok {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Image(Image::Build(a)) => {
            let cwd = std::env::current_dir().map_err(|e| Failure::environment(e.to_string()))?;
            let binary = match a.binary {
                Some(b) => b,
                None => {
                    out.step("==> building the static relay (cargo build --release, +crt-static)");
                    image::build_static_binary(&cwd)?
                }
            };
            let labels = image::Labels::for_checkout(&cwd);
            let built = image::build(&binary, &a.out, &a.tag, &labels)?;
            out.report(&built, || {
                format!(
                    "wrote {} ({} KiB compressed layer)
  reference {}
  manifest {}
load it with: podman load -i {}
",
                    built.archive.display(),
                    built.compressed_size / 1024,
                    built.reference,
                    built.manifest_digest,
                    built.archive.display()
                )
            });
        }
        Command::Deploy(a) => {
            a.check_target_flags().map_err(Failure::usage)?;
            let mut overrides = a.spec.overrides();
            overrides.podman_host = a.place.host.clone();
            overrides.identity = a.place.identity.clone();
            let spec = DeploySpec::load(a.spec.file.as_deref(), &overrides)?;
            let opts = deploy::DeployOptions {
                image_archive: a.image_archive,
                no_verify: a.no_verify,
                verify_engine_key: a.verify_engine_key,
                verify_vnc: a.verify_vnc,
                rollback_on_failure: a.rollback_on_failure,
                configure_engine: a.configure_engine,
                install: match (a.quadlet, a.no_quadlet) {
                    (true, _) => deploy::Install::Quadlet,
                    (_, true) => deploy::Install::Container,
                    _ => deploy::Install::Auto,
                },
                quadlet_dir: a.place.quadlet_dir.clone(),
            };
            let report = match a.place.target {
                Target::Podman => runtime()?.block_on(deploy::podman(&spec, &opts, out))?,
                Target::K8s => {
                    let k8s_opts = deploy::K8sOptions {
                        context: a.place.context,
                        dry_run: a.dry_run,
                        load_into_kind: a.load_into_kind,
                        timeout: std::time::Duration::from_secs(a.timeout.unwrap_or(180)),
                    };
                    runtime()?.block_on(deploy::kubernetes(&spec, &opts, &k8s_opts, out))?
                }
            };
            out.report(&report, || deploy::render(&report, opts.configure_engine));
        }
        Command::Undeploy(a) => {
            a.check_target_flags().map_err(Failure::usage)?;
            let removed = match a.place.target {
                Target::Podman => runtime()?.block_on(deploy::undeploy_podman(
                    a.place.host.as_deref(),
                    a.place.identity.as_deref(),
                    a.place.quadlet_dir.as_deref(),
                ))?,
                Target::K8s => runtime()?.block_on(async {
                    let client = deploy::k8s::client(a.place.context.as_deref()).await?;
                    deploy::k8s::undeploy(&client, a.namespace.as_deref().unwrap_or(spec::DEFAULT_NAMESPACE)).await
                })?,
            };
            out.report(&removed, || removed.render());
            if !removed.failed.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "wsproxyctl", &mut std::io::stdout());
        }
        Command::Manpage { out: dir } => {
            use clap::CommandFactory;
            fsutil::ensure_dir(&dir)?;
            let cmd = Cli::command();
            let mut written = Vec::new();
            let mut pages = vec![(format!("{}.1", cmd.get_name()), cmd.clone())];
            for sub in cmd.get_subcommands() {
                pages.push((
                    format!("{}-{}.1", cmd.get_name(), sub.get_name()),
                    sub.clone().name(format!("{}-{}", cmd.get_name(), sub.get_name())),
                ));
            }
            for (name, page) in pages {
                let mut buf = Vec::new();
                clap_mangen::Man::new(page).render(&mut buf).map_err(|e| Failure::environment(e.to_string()))?;
                let path = dir.join(name);
                fsutil::write_atomic(&path, &buf, 0o644)?;
                written.push(path);
            }
            out.report(&serde_json::json!({ "files": written }), || written.iter().map(|p| format!("wrote {}\n", p.display())).collect());
        }
        Command::Render(a) => {
            let spec = DeploySpec::load(a.spec.file.as_deref(), &a.spec.overrides())?;
            let files = match (a.target, a.without_secret) {
                (Target::K8s, true) => render::k8s::files(&spec, None),
                (Target::K8s, false) => render::k8s::files(&spec, Some(&Bundle::load(&spec.certs)?)),
                (Target::Podman, true) => return Err(Failure::usage("--without-secret applies to --target k8s only")),
                (Target::Podman, false) => render::podman::files(&spec, &Bundle::load(&spec.certs)?),
            };
            let written = render::write_all(&a.out, &files)?;
            out.report(&serde_json::json!({ "files": written }), || {
                written.iter().map(|p| format!("wrote {}\n", p.display())).collect::<String>()
            });
        }
        Command::Config(ConfigCmd::Schema { helm }) => {
            let schema = if helm { spec::helm_values_schema() } else { spec::json_schema() };
            println!("{}", serde_json::to_string_pretty(&schema).expect("json"));
        }
        Command::Config(ConfigCmd::Init { out: path }) => {
            if path.exists() {
                return Err(Failure::usage(format!("{} exists: not overwriting it", path.display())));
            }
            fsutil::write_atomic(&path, spec::EXAMPLE.as_bytes(), 0o644)?;
            out.report(&serde_json::json!({ "file": path }), || format!("wrote {}\n", path.display()));
        }
        Command::Verify(a) => {
            let report = runtime()?.block_on(verify::run(verify::VerifyArgs {
                proxy: a.proxy,
                ca: a.ca,
                engine_cert: a.engine_cert,
                engine_key: a.engine_key,
                vnc: a.vnc,
                timeout: std::time::Duration::from_secs(a.timeout.max(1)),
            }))?;
            out.report(&report, || report.render());
            if !report.ok {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Certs(Certs::Inspect(a)) => {
            let report = pki::inspect::run(&a.dir);
            out.report(&report, || report.render());
            if !report.ok {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
