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

step "GitHub Action: action.yml schema, zizmor, actionlint; shellcheck of every script"
check-jsonschema --builtin-schema vendor.github-actions action.yml
workflows=(action.yml)
if compgen -G ".github/workflows/*.yml" >/dev/null; then
    workflows+=(.github/workflows/*.yml)
    actionlint .github/workflows/*.yml
fi
zizmor --offline --min-severity low "${workflows[@]}"
shellcheck scripts/action-install.sh scripts/action-run.sh
# Every other script at warning level (unclosed quotes, unquoted expansions); variables set by
# name through printf -v or used by the sourced lib.sh are not findings.
shellcheck -S warning -e SC2034,SC2154,SC2209 -x scripts/*.sh bench/*.sh

step "IAM policies of the example (deploy iam-policy): parliament, cfn-lint of the snippet"
deploy_bin="${CARGO_TARGET_DIR}/debug/deploy"
policies=$(mktemp -d)
trap 'rm -rf "$policies"' EXIT
for env in dev staging prod; do
    (cd examples/planwise && "$deploy_bin" iam-policy "$env" --offline --output json 2>/dev/null) \
        >"$policies/$env.json"
    # parliament reads stdin unless it is a terminal or empty: give it nothing.
    serious=$(parliament --string "$(cat "$policies/$env.json")" --json --minimum_severity MEDIUM </dev/null)
    star=$(parliament --string "$(cat "$policies/$env.json")" --json --minimum_severity LOW </dev/null \
        | grep RESOURCE_STAR || true)
    if [[ -n "$serious" || -n "$star" ]]; then
        echo "parliament on the $env policy:" >&2
        echo "$serious$star" >&2
        exit 1
    fi
    {
        printf 'AWSTemplateFormatVersion: "2010-09-09"\nResources:\n  DeployerRole:\n'
        printf '    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument:\n'
        printf '        Version: "2012-10-17"\n        Statement:\n          - Effect: Allow\n'
        printf '            Principal: { Service: ecs-tasks.amazonaws.com }\n            Action: sts:AssumeRole\n'
        (cd examples/planwise && "$deploy_bin" iam-policy "$env" --offline --format cloudformation 2>/dev/null) \
            | sed 's/^/  /'
    } >"$policies/$env.yaml"
    cfn-lint "$policies/$env.yaml"
    echo "iam-policy $env: $(grep -c '"Sid"' "$policies/$env.json") statements; parliament and cfn-lint clean"
done

step "cfn-lint"
cfn-lint infra/*.yaml
echo "cfn-lint: infra/*.yaml clean"

step "README as a new user follows it: a clone with nothing beside it, the demo, Install, Your first project"
bash scripts/readme-check.sh
