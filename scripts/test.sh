#!/usr/bin/env bash
# The test command: formatting, clippy, unit and end-to-end tests against local emulators,
# cfn-lint on infra/. Installs what it needs (scripts/emulators.sh install) on a fresh machine.
set -euo pipefail
DEPLOY_LOG_PREFIX=test
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${DEPLOY_REPO_ROOT}"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deploy-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

bash scripts/emulators.sh install
export PATH="${DEPLOY_TOOLS_DIR}/venv/bin:${PATH}"

step() { printf '\n== %s\n' "$*"; }

step "rustfmt"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
cargo fmt --all -- --check

step "clippy"
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs (every public item of deploy-core documented, no broken link)"
RUSTDOCFLAGS="-D warnings" cargo doc -p deploy-core --no-deps --locked

step "each kind alone (cargo features image, dags, lambda)"
for kind in image dags lambda; do
    cargo clippy -p deploy-core --no-default-features --features "$kind" --locked -- -D warnings
done
# A build with only DAGs carries none of the image or Lambda service crates.
dags_only=$(cargo tree -p deploy-core --no-default-features --features dags -e normal --locked)
for crate in aws-sdk-ecs aws-sdk-ecr aws-sdk-lambda aws-sdk-codedeploy; do
    if grep -q "$crate " <<<"$dags_only"; then
        echo "deploy-core with only the dags feature depends on $crate" >&2
        exit 1
    fi
done
cargo test -p deploy-core --no-default-features --features dags --lib --locked

step "tests (unit, doc, end-to-end against moto; the harness starts and stops its own)"
cargo test --workspace --locked

step "GitHub Action: action.yml schema, zizmor, actionlint, shellcheck of its scripts"
check-jsonschema --builtin-schema vendor.github-actions action.yml
workflows=(action.yml)
if compgen -G ".github/workflows/*.yml" >/dev/null; then
    workflows+=(.github/workflows/*.yml)
    actionlint .github/workflows/*.yml
fi
zizmor --offline --min-severity low "${workflows[@]}"
shellcheck scripts/action-install.sh scripts/action-run.sh

step "cfn-lint"
cfn-lint infra/*.yaml
echo "cfn-lint: infra/*.yaml clean"
