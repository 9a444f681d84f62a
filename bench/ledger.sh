#!/usr/bin/env bash
# `history` and `status` against a ledger of 10,000 records (target: about a second each),
# next to a plain `aws s3api list-objects-v2` of the same bucket.
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
