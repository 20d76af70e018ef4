//! The command line: one subcommand per verb, each with an example in its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::pki::KeyType;

#[derive(Debug, Parser)]
#[command(
    name = "wsproxyctl",
    version,
    about = "Put an oVirt websocket proxy on a separate host: certificates, deployment, verification",
    after_help = "Exit codes: 0 ok, 1 a check failed, 2 bad usage or input, 3 missing environment (tool, socket, file)."
)]
pub struct Cli {
    /// Print machine-readable JSON instead of text (the same as -o json).
    #[arg(long, global = true, conflicts_with = "output")]
    pub json: bool,
    /// Output format: text, json or yaml.
    #[arg(long, short, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<crate::output::Format>,
    /// Print only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Also print what happens underneath: API requests, commands run on hosts, relay logs.
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Issue, request, sign, fetch and inspect the proxy's certificates.
    #[command(subcommand)]
    Certs(Certs),
    /// Check, as a browser would, that consoles can be opened through a proxy.
    #[command(after_help = "Examples:\n  wsproxyctl verify --proxy wss://proxy.example.com:6100 --ca ./proxy-certs/ca.pem\n  \
        wsproxyctl verify --proxy wss://proxy.example.com:6100 --ca ca.pem \\\n    \
        --engine-cert /etc/pki/ovirt-engine/certs/engine.cer --engine-key /etc/pki/ovirt-engine/keys/engine_id_rsa \\\n    \
        --vnc hypervisor1.example.com:5900")]
    Verify(VerifyArgs),
    /// Run the whole thing on this machine: throwaway engine PKI, relay, VNC test target, verify.
    #[command(
        after_help = "Examples:\n  wsproxyctl demo\n  wsproxyctl demo --novnc /usr/share/novnc   # prints a URL a browser can open\n  wsproxyctl demo --podman                  # the relay in a container on the local podman"
    )]
    Demo(DemoArgs),
    /// Build the relay's OCI image (no daemon, no base image).
    #[command(subcommand)]
    Image(Image),
    /// Render Kubernetes objects or Podman units from the deployment spec.
    #[command(
        after_help = "Examples:\n  wsproxyctl render --target k8s --proxy-fqdn proxy.example.com --certs ./proxy-certs --out ./k8s\n  \
        kubectl apply -k ./k8s\n  wsproxyctl render --target podman -f deploy.yaml --out ./quadlet"
    )]
    Render(RenderArgs),
    /// The deployment spec: its JSON Schema, or a commented example.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Deploy the relay to a podman host (local or over ssh) or a Kubernetes cluster, verify it.
    #[command(
        after_help = "Examples:\n  wsproxyctl deploy --target podman --host ssh://root@proxy.example.com --identity ~/.ssh/id_ed25519 \\\n    \
        --proxy-fqdn proxy.example.com --certs ./proxy-certs --image-archive wsproxy.oci.tar\n  \
        wsproxyctl deploy --target podman -f deploy.yaml --configure-engine"
    )]
    Deploy(Box<DeployArgs>),
    /// List or end the relay's open sessions through its admin listener (WSPROXY_ADMIN_LISTEN).
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:\n  wsproxyctl completions bash > /etc/bash_completion.d/wsproxyctl")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages generated from these definitions.
    #[command(after_help = "Example:\n  wsproxyctl manpage --out /usr/local/share/man/man1")]
    Manpage {
        /// Directory for wsproxyctl.1 and one page per verb.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Is the relay up where deploy put it: mode, image and version, uptime, restarts, the
    /// served certificate's days left. Exit 1 when not running, not ready, or the certificate
    /// ends within 30 days.
    #[command(after_help = "Examples:\n  wsproxyctl status --target podman --host ssh://root@proxy.example.com\n  \
        wsproxyctl status --target k8s -n consoles --connect-to proxy.example.com:6100 -o json")]
    Status(StatusArgs),
    /// Print the relay's log where it runs (podman host or Kubernetes pods).
    #[command(after_help = "Examples:\n  wsproxyctl logs --target podman --host ssh://root@proxy.example.com --since 1h\n  \
        wsproxyctl logs --target k8s -n consoles -f")]
    Logs(LogsArgs),
    /// Remove what deploy created, and nothing else.
    #[command(after_help = "Example:\n  wsproxyctl undeploy --target podman --host ssh://root@proxy.example.com")]
    Undeploy(UndeployArgs),
}

/// Where a deployment is: the target, and how to reach it.
#[derive(Debug, Args)]
pub struct Place {
    /// podman or k8s.
    #[arg(long, value_enum)]
    pub target: Target,
    /// Podman API: unix:///path/podman.sock (default: the local socket) or ssh://user@host[:port].
    /// Give it once per host to deploy several in turn, each verified before the next.
    #[arg(long, value_name = "URI")]
    pub host: Vec<String>,
    /// SSH private key for ssh:// hosts.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Kubernetes: kubeconfig context [default: the kubeconfig's current context].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Kubernetes: kubeconfig file [default: $KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Podman: where Quadlet units go (default: /etc/containers/systemd for root,
    /// ~/.config/containers/systemd for other users).
    #[arg(long, value_name = "DIR")]
    pub quadlet_dir: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub place: Place,
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Load the image from this archive (from `wsproxyctl image build`) instead of pulling it.
    #[arg(long, value_name = "FILE")]
    pub image_archive: Option<PathBuf>,
    /// Skip the verification at the end.
    #[arg(long)]
    pub no_verify: bool,
    /// Engine key to sign a test ticket during verification (on the engine host:
    /// /etc/pki/ovirt-engine/keys/engine_id_rsa).
    #[arg(long, value_name = "FILE")]
    pub verify_engine_key: Option<PathBuf>,
    /// A VNC server the proxy host can reach: verification expects its RFB banner through the proxy.
    #[arg(long, value_name = "HOST:PORT", requires = "verify_engine_key")]
    pub verify_vnc: Option<String>,
    /// Remove the deployment again when verification fails.
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// Podman: install a Quadlet unit and start it with systemd (the default when the host
    /// runs systemd); fails on hosts without systemd.
    #[arg(long, conflicts_with = "no_quadlet")]
    pub quadlet: bool,
    /// Podman: create and start the container directly (restart policy on-failure), even on a
    /// host with systemd.
    #[arg(long)]
    pub no_quadlet: bool,
    /// Run engine-config and restart the engine (run deploy on the engine host).
    #[arg(long)]
    pub configure_engine: bool,
    /// Change nothing: Kubernetes, a server-side dry run (validated by the API server, nothing
    /// persisted); podman, a plan read from the host (what would be created, replaced,
    /// removed or kept, and why).
    #[arg(long)]
    pub dry_run: bool,
    /// Kubernetes: load --image-archive into this kind cluster first.
    #[arg(long, value_name = "CLUSTER")]
    pub load_into_kind: Option<String>,
    /// Kubernetes: how long to wait for the Deployment to become available: 90s, 5m, 1h or
    /// plain seconds [default: 3m].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct UndeployArgs {
    #[command(flatten)]
    pub place: Place,
    /// Kubernetes: the namespace deploy used [default: the context's namespace, else
    /// ovirt-websocket-proxy].
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub place: Place,
    /// Kubernetes: the namespace [default: the context's, else ovirt-websocket-proxy].
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Where to read the served certificate, HOST:PORT [default on podman: the host's address and
    /// the deployed port; on Kubernetes it is not read without this].
    #[arg(long, value_name = "HOST:PORT")]
    pub connect_to: Option<String>,
    /// Count the open sessions through the relay's admin listener, https://HOST:PORT (with
    /// --admin-ca and --client-cert/--client-key or --token-file, as `sessions list`).
    #[arg(long, value_name = "URL", requires = "admin_ca")]
    pub admin: Option<String>,
    /// The CA the relay's certificate chains to, for --admin.
    #[arg(long, value_name = "FILE", requires = "admin")]
    pub admin_ca: Option<PathBuf>,
    /// A client certificate from `certs issue --client NAME`, for --admin (with --client-key).
    #[arg(long, value_name = "FILE", requires_all = ["client_key", "admin"])]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// A file holding the relay's admin token, for --admin.
    #[arg(long, value_name = "FILE", requires = "admin")]
    pub token_file: Option<PathBuf>,
    /// The name in the relay's certificate when --admin names another address (as
    /// `sessions --server-name`: through `kubectl port-forward`).
    #[arg(long, value_name = "NAME", requires = "admin")]
    pub admin_server_name: Option<String>,
}

impl StatusArgs {
    /// `--admin` and its credentials, as `sessions list` takes them.
    pub fn admin_options(&self) -> Option<crate::sessions::AdminOptions> {
        Some(crate::sessions::AdminOptions {
            url: self.admin.clone()?,
            ca: self.admin_ca.clone()?,
            client: self.client_cert.clone().zip(self.client_key.clone()),
            token_file: self.token_file.clone(),
            server_name: self.admin_server_name.clone(),
        })
    }

    /// Refuses flags of the other target, and those that mean nothing to a status.
    pub fn check_target_flags(&self) -> Result<(), String> {
        check_reader_flags("status", &self.place, self.namespace.is_some())
    }
}

/// For the verbs that only read one deployment (status, logs): the other target's flags,
/// `--quadlet-dir` (the container says where its unit is) and several `--host` are refused.
fn check_reader_flags(verb: &str, place: &Place, namespace: bool) -> Result<(), String> {
    if place.quadlet_dir.is_some() {
        return Err(format!("--quadlet-dir does nothing for {verb} (the container says where its unit is): drop it"));
    }
    if place.host.len() > 1 {
        return Err(format!("{verb} reads one podman host: give --host once"));
    }
    let mut flags = place.target_flags();
    flags.push(TargetFlag { name: "--namespace", given: namespace, belongs_to: Target::K8s });
    refuse_other_targets(place.target, &flags)
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub place: Place,
    /// Kubernetes: the namespace [default: the context's, else ovirt-websocket-proxy].
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Keep printing new lines until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines newer than this: 10m, 1h, 90s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub since: Option<std::time::Duration>,
}

impl LogsArgs {
    /// Refuses flags of the other target, and those that mean nothing to a log.
    pub fn check_target_flags(&self) -> Result<(), String> {
        check_reader_flags("logs", &self.place, self.namespace.is_some())
    }
}

/// Where a deployment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    K8s,
    Podman,
}

/// One flag given on the command line that belongs to one target only.
struct TargetFlag {
    name: &'static str,
    given: bool,
    belongs_to: Target,
}

/// A flag that does nothing for the chosen target is refused (exit 2) naming the target it
/// belongs to, instead of being silently ignored.
fn refuse_other_targets(target: Target, flags: &[TargetFlag]) -> Result<(), String> {
    let foreign: Vec<&TargetFlag> = flags.iter().filter(|f| f.given && f.belongs_to != target).collect();
    let Some(first) = foreign.first() else {
        return Ok(());
    };
    let names: Vec<&str> = foreign.iter().map(|f| f.name).collect();
    Err(format!(
        "{} appl{} to --target {} only and would do nothing with --target {}: drop {}",
        names.join(", "),
        if names.len() == 1 { "ies" } else { "y" },
        first.belongs_to.name(),
        target.name(),
        if names.len() == 1 { "it" } else { "them" },
    ))
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::K8s => "k8s",
            Target::Podman => "podman",
        }
    }
}

impl Place {
    fn target_flags(&self) -> Vec<TargetFlag> {
        vec![
            TargetFlag { name: "--host", given: !self.host.is_empty(), belongs_to: Target::Podman },
            TargetFlag { name: "--identity", given: self.identity.is_some(), belongs_to: Target::Podman },
            TargetFlag { name: "--quadlet-dir", given: self.quadlet_dir.is_some(), belongs_to: Target::Podman },
            TargetFlag { name: "--context", given: self.context.is_some(), belongs_to: Target::K8s },
            TargetFlag { name: "--kubeconfig", given: self.kubeconfig.is_some(), belongs_to: Target::K8s },
        ]
    }
}

impl DeployArgs {
    /// Refuses flags of the other target (see [`refuse_other_targets`]).
    pub fn check_target_flags(&self) -> Result<(), String> {
        let mut flags = self.place.target_flags();
        flags.extend([
            TargetFlag { name: "--quadlet", given: self.quadlet, belongs_to: Target::Podman },
            TargetFlag { name: "--no-quadlet", given: self.no_quadlet, belongs_to: Target::Podman },
            TargetFlag { name: "--load-into-kind", given: self.load_into_kind.is_some(), belongs_to: Target::K8s },
            TargetFlag { name: "--timeout", given: self.timeout.is_some(), belongs_to: Target::K8s },
            TargetFlag { name: "--namespace", given: self.spec.namespace.is_some(), belongs_to: Target::K8s },
            TargetFlag { name: "--replicas", given: self.spec.replicas.is_some(), belongs_to: Target::K8s },
            TargetFlag { name: "--service-type", given: self.spec.service_type.is_some(), belongs_to: Target::K8s },
        ]);
        refuse_other_targets(self.place.target, &flags)?;
        // Flags that another flag makes do nothing.
        let verifying = [
            ("--rollback-on-failure", self.rollback_on_failure),
            ("--verify-engine-key", self.verify_engine_key.is_some()),
            ("--verify-vnc", self.verify_vnc.is_some()),
        ];
        let idle: Vec<&str> = verifying.iter().filter(|(_, given)| *given).map(|(name, _)| *name).collect();
        if self.no_verify && !idle.is_empty() {
            return Err(format!("--no-verify skips the verification that {} act(s) on: drop one or the other", idle.join(", ")));
        }
        if self.dry_run && (self.configure_engine || !idle.is_empty()) {
            let mut names = idle;
            if self.configure_engine {
                names.push("--configure-engine");
            }
            return Err(format!("--dry-run changes and verifies nothing, so {} would do nothing: drop it", names.join(", ")));
        }
        if self.place.target == Target::K8s && self.image_archive.is_some() && self.load_into_kind.is_none() {
            return Err("--image-archive with --target k8s is used only by --load-into-kind: add --load-into-kind CLUSTER, or \
                        push the image to a registry the cluster pulls from and drop --image-archive"
                .into());
        }
        Ok(())
    }
}

impl UndeployArgs {
    /// Refuses flags of the other target (see [`refuse_other_targets`]).
    pub fn check_target_flags(&self) -> Result<(), String> {
        let mut flags = self.place.target_flags();
        flags.push(TargetFlag { name: "--namespace", given: self.namespace.is_some(), belongs_to: Target::K8s });
        refuse_other_targets(self.place.target, &flags)
    }
}

/// The deployment spec: `-f FILE` plus overriding flags.
#[derive(Debug, Args, Clone, Default)]
pub struct SpecArgs {
    /// Deployment description (YAML; `wsproxyctl config init` writes an example).
    #[arg(short = 'f', long = "file", value_name = "deploy.yaml")]
    pub file: Option<PathBuf>,
    /// The proxy's FQDN as browsers reach it.
    #[arg(long, value_name = "NAME")]
    pub proxy_fqdn: Option<String>,
    /// The engine's FQDN: with --configure-engine, deploy refuses to run on any other machine.
    #[arg(long, value_name = "NAME")]
    pub engine_fqdn: Option<String>,
    /// Certificate directory from `certs issue`.
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// Port browsers connect to.
    #[arg(long)]
    pub port: Option<u16>,
    /// Relay image reference.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Kubernetes namespace [default: deploy.yaml's, else the context's, else
    /// ovirt-websocket-proxy].
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Kubernetes replicas.
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Kubernetes Service type.
    #[arg(long, value_enum)]
    pub service_type: Option<crate::spec::ServiceType>,
    /// Redis or Valkey recording used tickets for every relay (redis://HOST:PORT or
    /// rediss://...): single use across replicas and hosts (docs/HA.md).
    #[arg(long, value_name = "URL")]
    pub replay_store: Option<String>,
}

impl SpecArgs {
    pub fn overrides(&self) -> crate::spec::Overrides {
        crate::spec::Overrides {
            engine_fqdn: self.engine_fqdn.clone(),
            proxy_fqdn: self.proxy_fqdn.clone(),
            certs: self.certs.clone(),
            port: self.port,
            image: self.image.clone(),
            namespace: self.namespace.clone(),
            replicas: self.replicas,
            service_type: self.service_type,
            replay_store: self.replay_store.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// What to render.
    #[arg(long, value_enum)]
    pub target: Target,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Kubernetes only: leave out the Secret (create it yourself; see README).
    #[arg(long)]
    pub without_secret: bool,
    #[command(flatten)]
    pub spec: SpecArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the JSON Schema of deploy.yaml.
    #[command(after_help = "Example:\n  wsproxyctl config schema > deploy.schema.json")]
    Schema {
        /// The Helm chart's values.schema.json instead.
        #[arg(long)]
        helm: bool,
    },
    /// Write a commented example deploy.yaml.
    #[command(after_help = "Example:\n  wsproxyctl config init --out deploy.yaml")]
    Init {
        /// Where to write it (refuses to overwrite).
        #[arg(long, value_name = "FILE", default_value = "deploy.yaml")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum Image {
    /// Write an OCI image archive holding only the static wsproxy (podman load, kind load image-archive, skopeo).
    #[command(
        after_help = "Example:\n  wsproxyctl image build --out wsproxy.oci.tar --tag registry.example.com/ovirt/websocket-proxy:1.0\n  \
        podman load -i wsproxy.oci.tar"
    )]
    Build(ImageBuildArgs),
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// Where to write the archive.
    #[arg(long, value_name = "FILE.tar")]
    pub out: PathBuf,
    /// Image reference stored in the archive.
    #[arg(long, value_name = "REF", default_value = crate::image::DEFAULT_TAG)]
    pub tag: String,
    /// A statically linked wsproxy to package (default: build it from this checkout).
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo PKI in this directory (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Port for the relay (a free one is used if it is busy).
    #[arg(long, default_value_t = 6100)]
    pub port: u16,
    /// noVNC directory to serve at /novnc/ (Debian: /usr/share/novnc).
    #[arg(long, value_name = "DIR")]
    pub novnc: Option<PathBuf>,
    /// Use the built-in VNC test pattern even when Xvnc is installed.
    #[arg(long)]
    pub builtin_vnc: bool,
    /// Exit after verifying instead of running until Ctrl-C.
    #[arg(long)]
    pub once: bool,
    /// Run the relay in a container on this machine's podman (the image is built from this
    /// checkout unless --image-archive is given).
    #[arg(long)]
    pub podman: bool,
    /// With --podman: the image archive from `wsproxyctl image build`.
    #[arg(long, value_name = "FILE", requires = "podman")]
    pub image_archive: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The proxy as browsers reach it: wss://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub proxy: String,
    /// Connect to this host (name or address) instead of where the proxy's name resolves: one
    /// relay of several behind a shared name. The certificate is still checked for the name.
    #[arg(long, value_name = "HOST")]
    pub connect_to: Option<String>,
    /// The engine CA the proxy certificate must chain to.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Engine certificate (checked against --engine-key).
    #[arg(long, value_name = "FILE")]
    pub engine_cert: Option<PathBuf>,
    /// Engine signing key: sign test tickets as the engine does.
    #[arg(long, value_name = "FILE")]
    pub engine_key: Option<PathBuf>,
    /// A VNC server the proxy host can reach: its RFB banner must come back through the proxy.
    #[arg(long, value_name = "HOST:PORT", requires = "engine_key")]
    pub vnc: Option<String>,
    /// How long each step may take: 10s, 1m or plain seconds.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "10s")]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum Certs {
    /// Issue the proxy's certificate from the engine CA (run on the engine host).
    #[command(after_help = "Example (on the engine):\n  wsproxyctl certs issue --ca-cert /etc/pki/ovirt-engine/ca.pem \\\n    \
        --ca-key /etc/pki/ovirt-engine/private/ca.pem --engine-cert /etc/pki/ovirt-engine/certs/engine.cer \\\n    \
        --fqdn proxy.example.com --out ./proxy-certs")]
    Issue(IssueArgs),
    /// Make a private key and a CSR on the proxy host (the key never leaves it).
    #[command(after_help = "Example (on the proxy host):\n  wsproxyctl certs request --fqdn proxy.example.com --out ./proxy-certs")]
    Request(RequestArgs),
    /// Sign a CSR with the engine CA (run on the engine host); prints the names it signs.
    #[command(after_help = "Example (on the engine):\n  wsproxyctl certs sign --ca-cert /etc/pki/ovirt-engine/ca.pem \\\n    \
        --ca-key /etc/pki/ovirt-engine/private/ca.pem --csr websocket-proxy.req --fqdn proxy.example.com \\\n    --out websocket-proxy.cer")]
    Sign(SignArgs),
    /// Download the CA and engine certificates from the engine over verified https.
    #[command(after_help = "Example:\n  wsproxyctl certs fetch --engine https://engine.example.com \\\n    \
        --ca-fingerprint sha256:AB:CD:... --out ./proxy-certs")]
    Fetch(FetchArgs),
    /// Show a certificate directory and check it; non-zero exit on problems or expiry within 30 days.
    #[command(after_help = "Example:\n  wsproxyctl certs inspect ./proxy-certs")]
    Inspect(InspectArgs),
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// The open sessions: id, client, target, start, bytes each way, ticket fingerprint.
    #[command(
        after_help = "Example:\n  wsproxyctl sessions list --admin https://proxy.example.com:6101 --ca ./proxy-certs/ca.pem \\\n    \
        --client-cert ./proxy-certs/admin-alice.cer --client-key ./proxy-certs/admin-alice.key"
    )]
    List(AdminArgs),
    /// End sessions by id, target or client address; their browsers see close 1008 with the reason.
    #[command(after_help = "Example:\n  wsproxyctl sessions kill --admin https://proxy.example.com:6101 --ca ca.pem \\\n    \
        --token-file ./admin-token --client 192.0.2.10")]
    Kill(KillArgs),
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The relay's admin listener, https://HOST:PORT (its WSPROXY_ADMIN_LISTEN).
    #[arg(long, value_name = "URL")]
    pub admin: String,
    /// The CA the relay's certificate chains to (ca.pem from `certs issue`).
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// A client certificate from `certs issue --client NAME` (with --client-key).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// A file holding the relay's bearer token (its WSPROXY_ADMIN_TOKEN_FILE).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The name in the relay's certificate (its proxy FQDN) when --admin names another
    /// address, as `https://localhost:6101` through `kubectl port-forward`.
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The session's id (from `sessions list`).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Every session to this target (as listed, e.g. tcp://192.168.10.21:5901).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Every session from this client address.
    #[arg(long, value_name = "IP")]
    pub client: Option<std::net::IpAddr>,
}

impl From<AdminArgs> for crate::sessions::AdminOptions {
    fn from(a: AdminArgs) -> Self {
        crate::sessions::AdminOptions {
            url: a.admin,
            ca: a.ca,
            client: a.client_cert.zip(a.client_key),
            token_file: a.token_file,
            server_name: a.server_name,
        }
    }
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Engine CA certificate (PEM), e.g. /etc/pki/ovirt-engine/ca.pem.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// Engine CA private key (PEM, PKCS#1 or PKCS#8), e.g. /etc/pki/ovirt-engine/private/ca.pem. Read, never copied.
    #[arg(long, value_name = "FILE")]
    pub ca_key: PathBuf,
    /// The proxy host's DNS name, as browsers will reach it.
    #[arg(long, value_name = "NAME", required_unless_present = "client")]
    pub fqdn: Option<String>,
    /// Extra DNS name or IP address for the certificate (repeatable).
    #[arg(long = "san", value_name = "DNS-or-IP")]
    pub sans: Vec<String>,
    /// Instead of the proxy's certificate, a client certificate for an operator of the relay's
    /// admin listener (WSPROXY_ADMIN_CLIENT_CA): admin-NAME.cer and admin-NAME.key in --out.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["fqdn", "sans", "engine_cert"])]
    pub client: Option<String>,
    /// Directory to write ca.pem, websocket-proxy.cer, websocket-proxy.key.nopass (and engine.cer).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Engine certificate (verifies tickets), copied as engine.cer, e.g. /etc/pki/ovirt-engine/certs/engine.cer.
    #[arg(long, value_name = "FILE")]
    pub engine_cert: Option<PathBuf>,
    /// Validity in days (at most 398).
    #[arg(long, default_value_t = 398)]
    pub days: u32,
    /// Key type of the proxy certificate.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Replace an existing proxy key.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The proxy host's DNS name.
    #[arg(long, value_name = "NAME")]
    pub fqdn: String,
    /// Extra DNS name or IP address (repeatable).
    #[arg(long = "san", value_name = "DNS-or-IP")]
    pub sans: Vec<String>,
    /// Directory for websocket-proxy.key.nopass and websocket-proxy.req.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Key type.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Replace an existing key.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Engine CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// Engine CA private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_key: PathBuf,
    /// The CSR made by `certs request`.
    #[arg(long, value_name = "FILE")]
    pub csr: PathBuf,
    /// Where to write the signed certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The proxy's name: the certificate's CN and first name. The CSR may ask for no name
    /// other than this and the --san names.
    #[arg(long, value_name = "NAME")]
    pub fqdn: String,
    /// Another name (DNS or IP) to sign; repeat for more. Only names given here and --fqdn
    /// are signed, whatever the CSR asks for.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Validity in days (at most 398).
    #[arg(long, default_value_t = 398)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The engine's URL, https://ENGINE-FQDN[:PORT].
    #[arg(long, value_name = "URL")]
    pub engine: String,
    /// Trust the engine CA only if its SHA-256 fingerprint is this.
    #[arg(long, value_name = "sha256:HEX", conflicts_with = "ca_cert")]
    pub ca_fingerprint: Option<String>,
    /// Trust the engine CA only if it is this certificate.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Directory to write ca.pem and engine.cer.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The certificate directory.
    pub dir: PathBuf,
}

// From the command line's argument structs to the library's option structs: the library never
// sees clap's types, and main stays a dispatcher.

impl From<IssueArgs> for crate::pki::issue::IssueOptions {
    fn from(a: IssueArgs) -> Self {
        crate::pki::issue::IssueOptions {
            ca_cert: a.ca_cert,
            ca_key: a.ca_key,
            fqdn: a.fqdn.unwrap_or_default(),
            sans: a.sans,
            out: a.out,
            engine_cert: a.engine_cert,
            days: a.days,
            key_type: a.key_type,
            force: a.force,
            client: a.client,
        }
    }
}

impl From<DemoArgs> for crate::demo::DemoOptions {
    fn from(a: DemoArgs) -> Self {
        crate::demo::DemoOptions {
            dir: a.dir,
            port: a.port,
            novnc: a.novnc,
            builtin_vnc: a.builtin_vnc,
            once: a.once,
            podman: a.podman,
            image_archive: a.image_archive,
        }
    }
}

impl From<VerifyArgs> for crate::verify::VerifyOptions {
    fn from(a: VerifyArgs) -> Self {
        crate::verify::VerifyOptions {
            proxy: a.proxy,
            connect_to: a.connect_to,
            ca: a.ca,
            engine_cert: a.engine_cert,
            engine_key: a.engine_key,
            vnc: a.vnc,
            timeout: a.timeout.max(std::time::Duration::from_secs(1)),
        }
    }
}

impl From<&DeployArgs> for crate::deploy::DeployOptions {
    fn from(a: &DeployArgs) -> Self {
        use crate::deploy::Install;
        crate::deploy::DeployOptions {
            image_archive: a.image_archive.clone(),
            no_verify: a.no_verify,
            verify_engine_key: a.verify_engine_key.clone(),
            verify_vnc: a.verify_vnc.clone(),
            verify_connect_to: None,
            rollback_on_failure: a.rollback_on_failure,
            configure_engine: a.configure_engine,
            install: match (a.quadlet, a.no_quadlet) {
                (true, _) => Install::Quadlet,
                (_, true) => Install::Container,
                _ => Install::Auto,
            },
            quadlet_dir: a.place.quadlet_dir.clone(),
        }
    }
}

impl From<&DeployArgs> for crate::deploy::K8sOptions {
    fn from(a: &DeployArgs) -> Self {
        crate::deploy::K8sOptions {
            context: a.place.context.clone(),
            kubeconfig: a.place.kubeconfig.clone(),
            dry_run: a.dry_run,
            load_into_kind: a.load_into_kind.clone(),
            timeout: a.timeout.unwrap_or(std::time::Duration::from_secs(180)),
        }
    }
}

impl FetchArgs {
    /// How the engine's CA is trusted: a pinned fingerprint, a CA file, or first use.
    pub fn trust(&self) -> Option<crate::pki::fetch::Trust> {
        match (&self.ca_fingerprint, &self.ca_cert) {
            (Some(fp), _) => Some(crate::pki::fetch::Trust::Fingerprint(fp.clone())),
            (None, Some(f)) => Some(crate::pki::fetch::Trust::CaFile(f.clone())),
            (None, None) => None,
        }
    }
}

/// A duration as kubectl takes them (`90s`, `5m`, `1h30m`), or plain seconds as before.
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("{e}: give a duration such as 90s, 5m or 1h, or plain seconds"))
}
