//! `wsproxyctl image build`: an OCI image archive holding the statically linked `wsproxy` and
//! nothing else, written by this code (ko-style): one layer tar, a config, a manifest, an
//! index. No daemon, no base image, no shell in the image.
//!
//! Reproducible: every timestamp is fixed (SOURCE_DATE_EPOCH or 0), owners are 0, entries are
//! in a fixed order, gzip carries no name or time: the same binary gives the same digest.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Failure, Result};

/// The uid/gid the relay runs as (distroless "nonroot").
pub const UID: u32 = 65532;
pub const ENTRYPOINT: &str = "/usr/local/bin/wsproxy";
/// Tagged with the release, not `latest`: a fixed tag says which relay runs, and matches the
/// Helm chart's default (its appVersion).
pub const DEFAULT_TAG: &str = concat!("localhost/ovirt-websocket-proxy:", env!("CARGO_PKG_VERSION"));
pub const TARGET_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// What went into an image.
#[derive(Debug, serde::Serialize)]
pub struct Built {
    pub archive: PathBuf,
    pub reference: String,
    pub manifest_digest: String,
    pub layer_digest: String,
    pub compressed_size: u64,
}

/// What `image build` prints.
impl std::fmt::Display for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "wrote {} ({} KiB compressed layer)", self.archive.display(), self.compressed_size / 1024)?;
        writeln!(f, "  reference {}\n  manifest {}", self.reference, self.manifest_digest)?;
        writeln!(f, "load it with: podman load -i {}", self.archive.display())
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the image needs to know about the relay binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elf {
    /// No PT_INTERP program header: runs without a libc in the image.
    pub is_static: bool,
    /// The OCI/Go name of the ELF machine (`amd64`, `arm64`, ...), for the image's platform.
    pub architecture: &'static str,
}

/// ELF e_machine values of the 64-bit little-endian platforms container images are built for,
/// with their OCI architecture names (the ELF specification's numbers, Go's GOARCH names).
const ELF_MACHINES: [(u16, &str); 5] = [(62, "amd64"), (183, "arm64"), (243, "riscv64"), (21, "ppc64le"), (258, "loong64")];

/// Reads an ELF executable's header: whether it is static and which machine it is for.
pub fn inspect_elf(bytes: &[u8]) -> std::result::Result<Elf, String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF executable".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let machine = u16_at(18);
    let architecture = ELF_MACHINES
        .iter()
        .find(|(m, _)| *m == machine)
        .map(|(_, name)| *name)
        .ok_or_else(|| format!("built for ELF machine {machine}, which has no container platform name here"))?;
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54) as usize, u16_at(56) as usize);
    for i in 0..phnum {
        let off = phoff.saturating_add(i * phentsize);
        if off.saturating_add(4) > bytes.len() {
            return Err("truncated ELF program headers".into());
        }
        if u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) == 3 {
            return Ok(Elf { is_static: false, architecture });
        }
    }
    Ok(Elf { is_static: true, architecture })
}

/// Build the static relay with cargo (from a source checkout) and return its path.
pub fn build_static_binary(workspace: &Path) -> Result<PathBuf> {
    if !workspace.join("relay/Cargo.toml").is_file() {
        return Err(Failure::usage(format!(
            "{} is not a wsproxyctl source checkout: pass --binary with a statically linked wsproxy",
            workspace.display()
        )));
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--release", "--locked", "-p", "wsproxy", "--target", TARGET_TRIPLE])
        .status()
        .map_err(|e| Failure::environment(format!("cannot run cargo to build the static relay: {e}")))?;
    if !status.success() {
        return Err(Failure::environment("cargo could not build the static relay (see its output above)"));
    }
    Ok(workspace.join("target").join(TARGET_TRIPLE).join("release/wsproxy"))
}

fn tar_header(path: &str, size: u64, mode: u32, kind: tar::EntryType, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).expect("static path");
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

/// Empty directories the image carries as mount points: with a read-only root filesystem the
/// runtime cannot create them (secrets at /run/secrets, configuration at /etc/wsproxy).
pub const MOUNT_POINTS: &[&str] = &["etc/", "etc/wsproxy/", "run/", "run/secrets/", "usr/", "usr/local/", "usr/local/bin/"];

/// The layer: directories and the binary, fixed metadata.
fn layer_tar(binary: &[u8], mtime: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for dir in MOUNT_POINTS {
        b.append(&tar_header(dir, 0, 0o755, tar::EntryType::Directory, mtime), std::io::empty()).expect("in memory");
    }
    b.append(&tar_header("usr/local/bin/wsproxy", binary.len() as u64, 0o755, tar::EntryType::Regular, mtime), binary).expect("in memory");
    b.into_inner().expect("in memory")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz: GzEncoder<Vec<u8>> = GzBuilder::new().mtime(0).write(Vec::new(), Compression::best());
    gz.write_all(data).expect("in memory");
    gz.finish().expect("in memory")
}

/// Labels for the image config.
pub struct Labels {
    pub version: String,
    pub revision: String,
    pub source: String,
}

impl Labels {
    /// This build's version and source, and the checkout's revision.
    pub fn for_checkout(dir: &Path) -> Labels {
        Labels {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: git_revision(dir),
            source: env!("CARGO_PKG_REPOSITORY").to_string(),
        }
    }
}

/// The reference (`RepoTags`) an image archive was tagged with.
pub fn reference_in(archive: &Path) -> Result<String> {
    let bad = |why: String| Failure::usage(format!("{}: {why}; use an archive from `wsproxyctl image build`", archive.display()));
    let file = std::fs::File::open(archive).map_err(|e| bad(format!("cannot open it: {e}")))?;
    let mut tar = tar::Archive::new(file);
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        if entry.path().map(|p| p.as_os_str() == "manifest.json").unwrap_or(false) {
            let manifest: serde_json::Value = serde_json::from_reader(&mut entry).map_err(|e| bad(e.to_string()))?;
            return manifest[0]["RepoTags"][0].as_str().map(str::to_string).ok_or_else(|| bad("no RepoTags in manifest.json".into()));
        }
    }
    Err(bad("no manifest.json in it".into()))
}

/// Write the OCI archive for `binary` to `out`, tagged `reference`.
pub fn build(binary_path: &Path, out: &Path, reference: &str, labels: &Labels) -> Result<Built> {
    let (binary, architecture) = read_static_binary(binary_path)?;
    let epoch: u64 = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let created = time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());

    let layer = layer_tar(&binary, epoch);
    let diff_id = sha256_hex(&layer);
    let layer_gz = gzip(&layer);
    let layer_digest = sha256_hex(&layer_gz);
    let config = image_config(&created, &diff_id, architecture, labels);
    let config_bytes = serde_json::to_vec(&config).expect("json");
    let config_digest = sha256_hex(&config_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config_bytes.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{layer_digest}"),
            "size": layer_gz.len(),
        }],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("json");
    let manifest_digest = sha256_hex(&manifest_bytes);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest_bytes.len(),
            "annotations": {
                "org.opencontainers.image.ref.name": reference,
                "io.containerd.image.name": reference,
            },
            "platform": { "architecture": architecture, "os": "linux" },
        }],
    });
    // Docker's archive manifest too, so `docker load` and `kind load image-archive` keep the tag.
    let docker_manifest = json!([{
        "Config": format!("blobs/sha256/{config_digest}"),
        "RepoTags": [reference],
        "Layers": [format!("blobs/sha256/{layer_digest}")],
    }]);

    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        archive.append(&tar_header(path, data.len() as u64, 0o644, tar::EntryType::Regular, epoch), data).expect("in memory");
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &serde_json::to_vec(&index).expect("json"));
    add("manifest.json", &serde_json::to_vec(&docker_manifest).expect("json"));
    add(&format!("blobs/sha256/{config_digest}"), &config_bytes);
    add(&format!("blobs/sha256/{layer_digest}"), &layer_gz);
    add(&format!("blobs/sha256/{manifest_digest}"), &manifest_bytes);
    let bytes = archive.into_inner().expect("in memory");
    crate::fsutil::write_atomic(out, &bytes, 0o644)?;
    Ok(Built {
        archive: out.to_path_buf(),
        reference: reference.to_string(),
        manifest_digest: format!("sha256:{manifest_digest}"),
        layer_digest: format!("sha256:{layer_digest}"),
        compressed_size: layer_gz.len() as u64,
    })
}

/// The relay binary, which must be statically linked (the image has no libc).
fn read_static_binary(binary_path: &Path) -> Result<(Vec<u8>, &'static str)> {
    let binary =
        std::fs::read(binary_path).map_err(|e| Failure::usage(format!("cannot read the relay binary {}: {e}", binary_path.display())))?;
    let architecture = match inspect_elf(&binary) {
        Ok(Elf { is_static: true, architecture }) => architecture,
        Ok(Elf { is_static: false, .. }) => {
            return Err(Failure::usage(format!(
                "{} is dynamically linked; the image has no libc. Build it with \
                 RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p wsproxy --target {TARGET_TRIPLE}",
                binary_path.display()
            )))
        }
        Err(why) => {
            return Err(Failure::usage(format!(
                "{}: {why}; --binary takes the statically linked wsproxy (leave --binary out to build it from this checkout)",
                binary_path.display()
            )))
        }
    };
    Ok((binary, architecture))
}

/// The image configuration: non-root user, the relay as entrypoint, the OCI labels.
fn image_config(created: &str, diff_id: &str, architecture: &str, labels: &Labels) -> serde_json::Value {
    json!({
        "created": created,
        "architecture": architecture,
        "os": "linux",
        "config": {
            "User": format!("{UID}:{UID}"),
            "Entrypoint": [ENTRYPOINT],
            "ExposedPorts": { "6100/tcp": {} },
            "Env": ["PATH=/usr/local/bin"],
            "WorkingDir": "/",
            "StopSignal": "SIGTERM",
            "Labels": {
                "org.opencontainers.image.title": "ovirt-websocket-proxy",
                "org.opencontainers.image.description": "oVirt-compatible WebSocket-to-VNC relay (wsproxy)",
                "org.opencontainers.image.source": labels.source,
                "org.opencontainers.image.version": labels.version,
                "org.opencontainers.image.revision": labels.revision,
                "org.opencontainers.image.licenses": "Apache-2.0",
            }
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [{ "created": created, "created_by": "wsproxyctl image build" }]
    })
}

/// The git revision of a checkout, or "unknown".
pub fn git_revision(dir: &Path) -> String {
    Command::new("git")
        .current_dir(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_detection() {
        assert!(inspect_elf(b"#!/bin/sh\n").is_err());
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let native = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(inspect_elf(&me), Ok(Elf { is_static: false, architecture: native }), "test binaries are dynamically linked");
    }

    #[test]
    fn the_platform_is_read_from_the_elf_machine() {
        let mut me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for (machine, name) in [(183u16, "arm64"), (62, "amd64"), (243, "riscv64")] {
            me[18..20].copy_from_slice(&machine.to_le_bytes());
            assert_eq!(inspect_elf(&me).unwrap().architecture, name);
        }
        me[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386: 32-bit x86
        assert!(inspect_elf(&me).unwrap_err().contains("ELF machine 3"));
    }

    #[test]
    fn layer_is_deterministic() {
        assert_eq!(sha256_hex(&gzip(&layer_tar(b"bin", 0))), sha256_hex(&gzip(&layer_tar(b"bin", 0))));
        assert_ne!(sha256_hex(&layer_tar(b"bin", 0)), sha256_hex(&layer_tar(b"bin2", 0)));
    }
}
