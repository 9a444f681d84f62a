#!/usr/bin/env bash
# `history -n 20` and `status` against a ledger of 10,000 records over about three years
# (target: about a second each), and `history --since 90d` (the ~860 records of the window
# read; target: a few seconds), next to a plain `aws s3api list-objects-v2` of the same bucket.
#   bash bench/ledger.sh [records]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/emulators.sh install >/dev/null
export PATH="${DEPLOY_TOOLS_DIR:-$HOME/.cache/deploy-tools}/venv/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deploy-target}"
profile="${BENCH_PROFILE:-release}"
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build --quiet "${flag[@]}" -p deploy-cli --bin deploy
cargo run --quiet "${flag[@]}" -p deploy-tests --bin ledger-bench -- "${1:-10000}"
