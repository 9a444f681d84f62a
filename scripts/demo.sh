#!/usr/bin/env bash
# The demo: installs and starts the local emulators, provisions dev, staging and prod from
# infra/ into them, and runs the example project's main job.
#
#   bash scripts/demo.sh          run it, then stop the emulators
#   DEPLOY_DEMO_KEEP=1 bash ...   leave the emulators running (source .emulators/env to use them)
set -euo pipefail
DEPLOY_LOG_PREFIX=demo
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${DEPLOY_REPO_ROOT}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deploy-target}"

bash scripts/emulators.sh install
bash scripts/emulators.sh start
if [ -z "${DEPLOY_DEMO_KEEP:-}" ]; then
    trap 'bash scripts/emulators.sh stop >/dev/null' EXIT
fi
# shellcheck disable=SC1091
. .emulators/env

banner() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { banner "$*"; "$@"; }

banner "provision dev, staging and prod from infra/environment.yaml"
python scripts/provision.py --environments dev,staging,prod --project planwise

cargo build --quiet -p deploy-cli --bin deploy
cargo build --quiet -p deploy-core --example embed
deploy="${CARGO_TARGET_DIR}/debug/deploy"
embed="${CARGO_TARGET_DIR}/debug/examples/embed"
# The example's deploy.toml targets real AWS; locally the image bytes go to the emulated
# registry, so a copy of it gains `endpoints.registry` for every environment.
config=examples/planwise/.local.toml
sed "s|^state_bucket = \(.*\)$|state_bucket = \1\nendpoints = { registry = \"http://${DEPLOY_TEST_REGISTRY}\" }|" \
    examples/planwise/deploy.toml > "$config"
version="$(git rev-parse --short HEAD 2>/dev/null || echo demo)"

run "$deploy" --config "$config" validate
run "$deploy" --config "$config" plan dev --version "$version"
run "$deploy" --config "$config" plan staging api --version "$version" --out "${DEPLOY_EMULATORS_DIR:-.emulators}/staging-api.plan.json"
run "$deploy" --config "$config" publish dev api --version "$version"
run "$deploy" --config "$config" publish dev api --version "$version"
banner "skopeo reads back what was pushed"
skopeo inspect --tls-verify=false "docker://${DEPLOY_TEST_REGISTRY}/planwise/api:${version}" | head -4

banner "release jobs to dev, then promote what dev runs to staging and what staging runs to prod"
run "$deploy" --config "$config" release dev jobs --version "$version"
run "$deploy" --config "$config" promote dev staging jobs
banner "$deploy --config $config promote staging prod jobs   # prod needs approval"
set +e
"$deploy" --config "$config" promote staging prod jobs
code=$?
set -e
echo "exit code ${code} (5: approval required)"
[ "$code" -eq 5 ] || { echo "demo: expected exit code 5" >&2; exit 1; }
run "$deploy" --config "$config" promote staging prod jobs --dry-run
run "$deploy" --config "$config" promote staging prod jobs --approve
run "$deploy" --config "$config" lock dev status
banner "a locked, recorded change of dev through the library (deploy-core/examples/embed.rs)"
"$embed" "$config" dev api
run "$deploy" --config "$config" lock dev status
run "$deploy" --config "$config" history
run "$deploy" --config "$config" status
echo
echo "demo finished: ECS rolling updates and task-definition families are tested against a scripted ECS double (tests/tests/ecs_rolling.rs), which moto alone cannot play; CodeDeploy, DAGs and Lambda arrive with their own issues; see README.md"
