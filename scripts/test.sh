#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh Debian 12 machine:
#   bash scripts/test.sh
# It installs what the integration tests run for real (Xvnc, openssl, curl, ...), then runs
# `cargo test` for the workspace. Re-running skips installs that are already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

# Debian packages the tests use, by the tool each provides.
declare -A PKG=(
  [Xvnc]=tigervnc-standalone-server
  [vncpasswd]=tigervnc-tools
  [xsetroot]=x11-xserver-utils
  [openssl]=openssl
  [curl]=curl
)
missing=()
for tool in "${!PKG[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG[$tool]}")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "cargo test --workspace"
cargo test --workspace --locked "$@"
