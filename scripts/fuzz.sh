#!/usr/bin/env bash
# Run every fuzz target for a bounded time from the checked-in corpus.
#   bash scripts/fuzz.sh            # 10 s per target (what the test command runs)
#   bash scripts/fuzz.sh 600        # a longer run
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# A crash fails the run and leaves the input in relay/fuzz/artifacts/: turn it into a
# regression test in relay/src (ticket, config, vencrypt, http) before fixing it.
set -euo pipefail
cd "$(dirname "$0")/../relay"
seconds="${1:-10}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz 0.13.2"
  cargo install cargo-fuzz@0.13.2 --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
for target in ticket config vencrypt http_head ws_frames; do
  work="$(mktemp -d)"
  echo "==> fuzz $target for ${seconds}s"
  cargo fuzz run --fuzz-dir fuzz "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | grep -E "^(#|Done|stat::number_of_executed_units|==|SUMMARY)" | tail -3
  rm -rf "$work"
done
