#!/usr/bin/env bash
# The soak run of issue 8: 500 concurrent wss sessions for 60 s through a release relay,
# checksummed echo both ways, a stream of good and foreign tickets; prints the figures.
#   bash scripts/soak.sh [--soak-seconds N] [--soak-sessions N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p wsproxy -p wsproxy-bench
exec target/release/wsproxy-bench --soak --relay target/release/wsproxy "$@"
