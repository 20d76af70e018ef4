#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh Debian 12 machine:
#   bash scripts/test.sh
# It installs what the integration tests run for real (Xvnc, openssl, curl, ...), then runs
# `cargo test` for the workspace. Re-running skips installs that are already done.
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

# Podman on this kind of host needs runc, cgroupfs and ulimits it may set: the tests pass
# tests/podman/containers.conf through CONTAINERS_CONF (see docs/PODMAN.md).
export CONTAINERS_CONF="$PWD/tests/podman/containers.conf"

say "cargo test --workspace"
cargo test --workspace --locked "$@"
