//! Test hosts made by the test itself: a network namespace standing in for a hypervisor (reached
//! from containers through a veth pair, in 198.18.0.0/15, the benchmarking range), an sshd on a
//! loopback port standing in for the separate proxy host, and the podman API service behind it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{require_tool, run, wait_port};

/// A network namespace with one veth link to the host: host side `.1`, namespace side `.2`.
pub struct NetnsHost {
    pub name: String,
    pub host_ip: String,
    pub ns_ip: String,
    veth: String,
}

impl NetnsHost {
    pub fn new(tag: &str) -> NetnsHost {
        require_tool("ip");
        let id = std::process::id() % 200 + 20;
        let name = format!("wsp{tag}{}", std::process::id());
        let veth = format!("wv{tag}{}", std::process::id() % 100000);
        let (host_ip, ns_ip) = (format!("198.18.{id}.1"), format!("198.18.{id}.2"));
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &veth]).output();
        run(Command::new("ip").args(["netns", "add", &name]));
        let peer = format!("{veth}p");
        run(Command::new("ip").args(["link", "add", &veth, "type", "veth", "peer", "name", &peer]));
        run(Command::new("ip").args(["link", "set", &peer, "netns", &name]));
        run(Command::new("ip").args(["addr", "add", &format!("{host_ip}/30"), "dev", &veth]));
        run(Command::new("ip").args(["link", "set", &veth, "up"]));
        let ns = |args: &[&str]| run(Command::new("ip").args(["netns", "exec", &name]).args(args));
        ns(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &peer]);
        ns(&["ip", "link", "set", &peer, "up"]);
        ns(&["ip", "link", "set", "lo", "up"]);
        ns(&["ip", "route", "add", "default", "via", &host_ip]);
        NetnsHost { name, host_ip, ns_ip, veth }
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// A command in the namespace's network only: `ip netns exec` also remounts /sys for the
    /// namespace, which hides the cgroup mounts a container runtime needs; `nsenter --net` does not.
    pub fn network_command(&self, program: &str) -> Command {
        require_tool("nsenter");
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name)).arg(program);
        c
    }
}

impl Drop for NetnsHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Xvnc inside a namespace, listening on its address.
pub struct NetnsXvnc {
    pub addr: String,
    pub port: u16,
    pub display: u32,
    child: Child,
    _dir: tempfile::TempDir,
}

impl NetnsXvnc {
    pub fn start(host: &NetnsHost, password: &str, colour: Option<&str>) -> NetnsXvnc {
        Self::start_with(host, password, colour, 5900, None)
    }

    /// Xvnc on `port`; with `x509` = (cert, key), VeNCrypt X509Vnc only (as libvirt's vnc_tls).
    pub fn start_with(host: &NetnsHost, password: &str, colour: Option<&str>, port: u16, x509: Option<(&Path, &Path)>) -> NetnsXvnc {
        require_tool("Xvnc");
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let mut p = Command::new("vncpasswd").arg("-f").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        {
            use std::io::Write;
            p.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        }
        std::fs::write(&passwd, p.wait_with_output().unwrap().stdout).unwrap();
        let display = 900 + (std::process::id() % 40) * 2 + u32::from(port % 2);
        let mut cmd = host.command("Xvnc");
        cmd.arg(format!(":{display}"))
            .args(["-rfbport", &port.to_string(), "-interface", &host.ns_ip, "-geometry", "640x400", "-depth", "24"])
            .args(["-nolisten", "tcp", "-AlwaysShared", "-PasswordFile"])
            .arg(&passwd);
        match x509 {
            None => {
                cmd.args(["-SecurityTypes", "VncAuth"]);
            }
            Some((cert, key)) => {
                cmd.args(["-SecurityTypes", "X509Vnc", "-X509Cert"]).arg(cert).arg("-X509Key").arg(key);
            }
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        for _ in 0..250 {
            let ok =
                host.command("sh").args(["-c", &format!("exec 3<>/dev/tcp/{}/{port}", host.ns_ip)]).output().map(|o| o.status.success());
            if ok.unwrap_or(false) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(c) = colour {
            run(host.command("xsetroot").env("DISPLAY", format!(":{display}")).args(["-solid", c]));
        }
        NetnsXvnc { addr: host.ns_ip.clone(), port, display, child, _dir: dir }
    }
}

impl Drop for NetnsXvnc {
    fn drop(&mut self) {
        crate::stop_x_server(&mut self.child);
    }
}

/// `podman system service` on a socket, with the project's containers.conf.
pub struct PodmanService {
    pub socket: PathBuf,
    child: Option<Child>,
    /// A podman of its own (store, run and tmp directories here): its containers are removed
    /// when it stops.
    own_store: Option<tempfile::TempDir>,
}

pub fn containers_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/podman/containers.conf")
}

impl PodmanService {
    /// Serve the API at `socket` (unless something already answers there).
    pub fn start(socket: &Path) -> PodmanService {
        PodmanService::start_with_env(socket, &[])
    }

    /// Like [`PodmanService::start`], with extra environment (e.g. CONTAINERS_REGISTRIES_CONF).
    pub fn start_with_env(socket: &Path, env: &[(&str, &Path)]) -> PodmanService {
        require_tool("podman");
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return PodmanService { socket: socket.to_path_buf(), child: None, own_store: None };
        }
        let _ = std::fs::remove_file(socket);
        let mut podman = Command::new("podman");
        podman.envs(env.iter().map(|(k, v)| (*k, *v)));
        let child = serve(podman, socket);
        PodmanService { socket: socket.to_path_buf(), child: Some(child), own_store: None }
    }

    /// A second podman host on this machine: a podman with a store of its own, serving its API
    /// from inside `host`'s network namespace, so host-network containers get that namespace's
    /// address and ports (a relay there does not collide with one on this machine's network).
    pub fn start_in(host: &NetnsHost) -> PodmanService {
        require_tool("podman");
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podman.sock");
        let d = |n: &str| dir.path().join(n).display().to_string();
        let mut podman = host.network_command("podman");
        podman.args(["--root", &d("root"), "--runroot", &d("run"), "--tmpdir", &d("tmp")]);
        let child = serve(podman, &socket);
        PodmanService { socket, child: Some(child), own_store: Some(dir) }
    }

    /// The podman CLI talking to this service (`podman --url unix://SOCKET ...`).
    pub fn cli(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--url").arg(format!("unix://{}", self.socket.display()));
        c
    }
}

/// `podman [global options] system service` on `socket`, with the project's containers.conf,
/// waited for until the socket answers.
fn serve(mut podman: Command, socket: &Path) -> Child {
    let child = podman
        .env("CONTAINERS_CONF", containers_conf())
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..250 {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        if self.own_store.is_some() {
            let _ = self.cli().args(["rm", "-a", "-f", "-t", "0"]).output();
            let _ = self.cli().args(["volume", "prune", "-f"]).output();
        }
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(store) = &self.own_store {
            // The overlay driver bind-mounts its directory onto itself; it outlives the service.
            let _ = Command::new("umount").arg("-R").arg(store.path().join("root/overlay")).output();
        }
    }
}

/// The sessions' environment as an sshd `SetEnv` value.
fn session_env(extra: &[(&str, String)]) -> String {
    let mut vars = vec![
        ("PATH".to_string(), "/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
        ("CONTAINERS_CONF".into(), containers_conf().display().to_string()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.clone()));
    }
    vars.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// sshd on a loopback port, root login with a fresh key (the "separate host" of deploy tests).
pub struct SshHost {
    /// Where sshd listens (127.0.0.1, or a namespace's address).
    pub addr: String,
    pub port: u16,
    pub identity: PathBuf,
    /// A directory with an `ssh` wrapper that keeps host keys out of the user's known_hosts.
    pub ssh_wrapper_dir: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SshHost {
    pub fn start() -> SshHost {
        SshHost::start_with_env(&[])
    }

    /// Like [`SshHost::start`], with extra environment for sessions (`PATH` replaces the default).
    pub fn start_with_env(env: &[(&str, String)]) -> SshHost {
        SshHost::start_at(None, env)
    }

    /// sshd inside `host`'s namespace, on its address: with [`PodmanService::start_in`] (its
    /// socket as `CONTAINER_HOST` in `env`), a second proxy host whose ssh address is also
    /// where its relay answers.
    pub fn start_in(host: &NetnsHost, env: &[(&str, String)]) -> SshHost {
        SshHost::start_at(Some(host), env)
    }

    fn start_at(netns: Option<&NetnsHost>, env: &[(&str, String)]) -> SshHost {
        require_tool("ssh-keygen");
        assert!(Path::new("/usr/sbin/sshd").is_file(), "sshd is not installed: run `bash scripts/test.sh` (installs openssh-server)");
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(p("host_key")));
        run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(p("id")));
        std::fs::copy(p("id.pub"), p("authorized_keys")).unwrap();
        let port = crate::free_port();
        let addr = netns.map(|h| h.ns_ip.clone()).unwrap_or_else(|| "127.0.0.1".into());
        std::fs::create_dir_all("/run/sshd").unwrap();
        std::fs::write(
            p("sshd_config"),
            format!(
                "Port {port}\nListenAddress {addr}\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nPidFile {}\n\
                 SetEnv {}\n",
                p("host_key").display(),
                p("authorized_keys").display(),
                p("sshd.pid").display(),
                session_env(env)
            ),
        )
        .unwrap();
        let mut sshd = match netns {
            Some(h) => h.network_command("/usr/sbin/sshd"),
            None => Command::new("/usr/sbin/sshd"),
        };
        let child = sshd.args(["-D", "-e", "-f"]).arg(p("sshd_config")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        crate::wait_addr(&addr, port, Duration::from_secs(10));
        let wrapper_dir = p("bin");
        std::fs::create_dir_all(&wrapper_dir).unwrap();
        let wrapper = wrapper_dir.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new \"$@\"\n",
                p("known_hosts").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        SshHost { addr, port, identity: p("id"), ssh_wrapper_dir: wrapper_dir, child, _dir: dir }
    }

    pub fn uri(&self) -> String {
        format!("ssh://root@{}:{}", self.addr, self.port)
    }

    /// Let `other`'s key log in here too (one `--identity` for several hosts).
    pub fn authorize(&self, other: &SshHost) {
        let key = std::fs::read_to_string(other.identity.with_extension("pub")).unwrap();
        let mut keys = std::fs::read_to_string(self._dir.path().join("authorized_keys")).unwrap();
        keys.push_str(&key);
        std::fs::write(self._dir.path().join("authorized_keys"), keys).unwrap();
    }

    /// PATH for a client process: the ssh wrapper first.
    pub fn client_path(&self) -> String {
        format!("{}:{}", self.ssh_wrapper_dir.display(), std::env::var("PATH").unwrap_or_default())
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A container registry on a loopback port (Debian's docker-registry, the CNCF distribution
/// server), plain http, storage in a temporary directory; and a registries.conf that lets
/// podman use it without TLS.
pub struct Registry {
    pub port: u16,
    pub registries_conf: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        assert!(
            Path::new("/usr/bin/docker-registry").is_file(),
            "docker-registry is not installed: run `bash scripts/test.sh` (installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let registries_conf = dir.path().join("registries.conf");
        std::fs::write(&registries_conf, format!("[[registry]]\nlocation = \"127.0.0.1:{port}\"\ninsecure = true\n")).unwrap();
        let child =
            Command::new("/usr/bin/docker-registry").arg("serve").arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        wait_port(port, Duration::from_secs(10));
        Registry { port, registries_conf, child, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
