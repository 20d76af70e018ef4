//! `wsproxy`: read oVirt configuration files and flags, then serve until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};
use wsproxy::config::{flag_name, key, Config, LogFormat, Origin, Settings, KEYS};
use wsproxy::Relay;

fn command() -> Command {
    let mut cmd = Command::new("wsproxy")
        .version(env!("CARGO_PKG_VERSION"))
        .about("oVirt-compatible WebSocket-to-VNC relay")
        .long_about(
            "oVirt-compatible WebSocket-to-VNC relay.\n\n\
             Reads oVirt's ovirt-websocket-proxy configuration (KEY=VALUE files; a conf.d directory is read \
             in name order, later files win). Every key can also be given as a flag, which overrides files.",
        )
        .after_help(
            "Example:\n  wsproxy --config /etc/ovirt-engine/ovirt-websocket-proxy.conf.d\n  \
             wsproxy --proxy-port 6100 --ssl-certificate proxy.cer --ssl-key proxy.key \\\n          \
             --cert-for-data-verification engine.cer",
        )
        .arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .value_name("PATH")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(PathBuf))
                .help("oVirt-format configuration file or conf.d directory (repeatable)"),
        );
    cmd = cmd.args_conflicts_with_subcommands(true).subcommand(
        Command::new("healthcheck")
            .about("GET a relay's /healthz or /readyz; exit 0 on 2xx, 1 otherwise (for container health checks: the image has no shell)")
            .arg(Arg::new("url").value_name("URL").required(true).help("e.g. https://127.0.0.1:6100/readyz"))
            .arg(
                Arg::new("ca")
                    .long("ca")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("CA the relay's certificate must chain to"),
            )
            .arg(
                Arg::new("insecure")
                    .long("insecure")
                    .action(ArgAction::SetTrue)
                    .conflicts_with("ca")
                    .help("accept any certificate (the relay's own port on localhost)"),
            )
            .arg(
                Arg::new("timeout")
                    .long("timeout")
                    .value_name("SECONDS")
                    .default_value("5")
                    .value_parser(clap::value_parser!(u64))
                    .help("give up after this long"),
            ),
    );
    for key in KEYS {
        cmd = cmd.arg(Arg::new(key.name).long(flag_name(key.name)).value_name("VALUE").help(format!(
            "{} [{}]",
            key.help_with_default(),
            key.name
        )));
    }
    cmd
}

fn init_logging(config: &Config) {
    let level = if config.trace { tracing::Level::DEBUG } else { tracing::Level::INFO };
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_target(false).with_ansi(colour);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// `wsproxy healthcheck`: one line on stdout when healthy, the reason on stderr and exit 1 when not.
fn healthcheck(m: &clap::ArgMatches) -> ExitCode {
    use wsproxy::healthcheck::{check, Trust};
    let url = m.get_one::<String>("url").map(String::as_str).unwrap_or_default();
    let trust = match (m.get_one::<PathBuf>("ca"), m.get_flag("insecure")) {
        (Some(ca), _) => Some(Trust::Ca(ca)),
        (None, true) => Some(Trust::Insecure),
        (None, false) => None,
    };
    let timeout = std::time::Duration::from_secs(m.get_one::<u64>("timeout").copied().unwrap_or(5));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsproxy healthcheck: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(check(url, trust, timeout)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("wsproxy healthcheck: {why}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    if let Some(("healthcheck", m)) = matches.subcommand() {
        return healthcheck(m);
    }
    let (settings, config) = match load(&matches) {
        Ok(loaded) => loaded,
        Err(why) => {
            eprintln!("wsproxy: {why}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let fd_limit = wsproxy::fd_limit::raise_fd_limit();
    note_what_is_ignored(&settings, &config);
    serve(config, fd_limit)
}

/// The configuration: files and directories from `--config` in order, then flags.
fn load(matches: &clap::ArgMatches) -> Result<(Settings, Config), String> {
    let mut settings = Settings::default();
    for path in matches.get_many::<PathBuf>("config").into_iter().flatten() {
        settings.load_path(path).map_err(|e| e.to_string())?;
    }
    for key in KEYS {
        if let Some(value) = matches.get_one::<String>(key.name) {
            settings.set(*key, value.clone(), Origin::Flag);
        }
    }
    let config = Config::from_settings(&settings).map_err(|e| e.to_string())?;
    Ok((settings, config))
}

/// Keys oVirt's proxy reads and this relay accepts without acting on, said once at start.
fn note_what_is_ignored(settings: &Settings, config: &Config) {
    for (key, origin) in &settings.ignored {
        tracing::debug!(key = %key, at = %origin, "ignoring a key the relay does not use");
    }
    if settings.get(key::SSL_CIPHERS).is_some_and(|v| !v.trim().is_empty()) {
        tracing::info!("SSL_CIPHERS is ignored: rustls offers only modern AEAD cipher suites");
    }
    if let Some(file) = settings.get(key::TRACE_FILE).filter(|v| !v.trim().is_empty()) {
        tracing::warn!(trace_file = %file, "TRACE_FILE is ignored: logs go to stderr (the journal or the container log)");
    }
    if config.target_ca.is_none() {
        tracing::debug!("WSPROXY_TARGET_CA unset: VeNCrypt/KubeVirt target certificates are not verified (as oVirt's proxy)");
    }
}

/// Start both runtimes, bind, and relay until a stop signal.
fn serve(config: Config, fd_limit: Option<u64>) -> ExitCode {
    let runtime = match wsproxy::runtime::build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsproxy: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    // Kept alive beside the main runtime for as long as it runs (dropped after it); without
    // it (WSPROXY_BULK_LANE=False) every session stays on the main runtime.
    let _bulk_lane = match config.bulk_lane_nice.map(wsproxy::runtime::build_bulk_lane).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsproxy: cannot start the bulk lane's runtime: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(async move {
        let relay = match Relay::bind(config.clone()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("wsproxy: {e}");
                return ExitCode::from(2);
            }
        };
        tracing::info!(
            listen = %relay.local_addr(),
            tls = config.tls.is_some(),
            ssl_only = config.tls.as_ref().is_some_and(|t| t.ssl_only),
            metrics = ?relay.metrics_addr(),
            fd_limit = ?fd_limit,
            version = env!("CARGO_PKG_VERSION"),
            "wsproxy ready"
        );
        relay.serve(stop_signal()).await;
        ExitCode::SUCCESS
    })
}
