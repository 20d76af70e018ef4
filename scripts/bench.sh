#!/usr/bin/env bash
# The benchmark, as one command: builds the relay and the harness in release mode, installs
# the peers (socat and redis-server from Debian, websockify from PyPI) if missing, and prints the table.
#   bash scripts/bench.sh [--json results.json]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v socat >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat; }
# redis-server: the shared replay store's row (wss setups with single use kept in Redis).
command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; }
# websockify goes into the same virtual environment scripts/test.sh uses (never the system Python).
venv="$PWD/target/tools/venv"
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
[ -x "$venv/bin/websockify" ] || "$venv/bin/python3" -m pip install -q --disable-pip-version-check websockify==0.13.0
export PATH="$venv/bin:$PATH"
cargo build --release --locked -p wsproxy -p wsproxy-bench
exec target/release/wsproxy-bench --relay target/release/wsproxy "$@"
