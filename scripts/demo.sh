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
banner "the example application's own resources (services, task definitions, the nightly rule)"
python examples/planwise/app.py dev staging prod

# One build of everything the demo runs. The first one compiles the AWS SDK and its TLS stack
# from source: about 4 to 7 minutes on 2 cores (measured: 4m07s for deploy-cli alone), a few
# seconds afterwards. Cargo shows its progress.
banner "cargo build (deploy, the embedding example, the ECS and CodeDeploy doubles)"
build_started=$(date +%s)
cargo build -p deploy-cli --bin deploy -p deploy-core --example embed \
    -p deploy-tests --bin ecs-double --bin codedeploy-double
echo "built in $(( $(date +%s) - build_started )) s"
deploy="${CARGO_TARGET_DIR}/debug/deploy"
embed="${CARGO_TARGET_DIR}/debug/examples/embed"

# moto's ECS changes a service's task definition but plays no deployment and no task exit:
# the scripted ECS double of the tests sits in front of it and does (tests/src/ecs_double.rs).
# A local HTTP server answers the API's health check.
run_dir="${DEPLOY_EMULATORS_DIR:-.emulators}"
mkdir -p "$run_dir/health"
echo ok >"$run_dir/health/health"
"${CARGO_TARGET_DIR}/debug/ecs-double" "$AWS_ENDPOINT_URL" >"$run_dir/ecs-double.url" &
double_pid=$!
"${CARGO_TARGET_DIR}/debug/codedeploy-double" "$AWS_ENDPOINT_URL" eu-west-1 >"$run_dir/codedeploy-double.url" &
codedeploy_pid=$!
health_port="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python -m http.server --bind 127.0.0.1 --directory "$run_dir/health" "$health_port" >/dev/null 2>&1 &
health_pid=$!
stop_helpers() { kill "$double_pid" "$codedeploy_pid" "$health_pid" 2>/dev/null || true; }
if [ -z "${DEPLOY_DEMO_KEEP:-}" ]; then
    trap 'stop_helpers; bash scripts/emulators.sh stop >/dev/null' EXIT
else
    # Kept running with the emulators: `scripts/emulators.sh stop` ends them too.
    printf '%s\n' "$double_pid" "$codedeploy_pid" "$health_pid" >"$run_dir/helpers.pids"
fi
for _ in $(seq 50); do [ -s "$run_dir/ecs-double.url" ] && [ -s "$run_dir/codedeploy-double.url" ] && break; sleep 0.1; done
ecs_double="$(head -1 "$run_dir/ecs-double.url")"
codedeploy_double="$(head -1 "$run_dir/codedeploy-double.url")"

# The example's deploy.toml targets real AWS; locally the image bytes go to the emulated
# registry and ECS and CodeDeploy calls to the doubles, so a copy of it gains `endpoints`
# for every environment, the health check asks the local server, and the scan gate is off
# (ECR scans images; the local registry does not).
config=examples/planwise/.local.toml
# The DAG folder is a copy, so the demo can change a DAG and roll the change back.
dag_copy="$(cd "$run_dir" && pwd)/dags"
rm -rf "$dag_copy" && cp -r examples/planwise/dags "$dag_copy"
sed -e "s|^source = \"./dags\"|source = \"${dag_copy}\"|" \
    -e "s|^state_bucket = \(.*\)$|state_bucket = \1\nendpoints = { registry = \"http://${DEPLOY_TEST_REGISTRY}\", ecs = \"${ecs_double}\", codedeploy = \"${codedeploy_double}\" }|" \
    -e "s|https://api-{env}.planwise.example/health|http://127.0.0.1:${health_port}/health|" \
    -e 's|^scan = "block-critical"|scan = "none"                    # the local registry is not ECR: it scans nothing|' \
    -e 's|^  interval = "5m"|  interval = "1s"                # the demo does not wait five minutes between steps|' \
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

banner "release api to dev: migration task, rolling update with the circuit breaker, health gate"
run "$deploy" --config "$config" release dev api --version "$version"
banner "ECS reads back what the service runs now"
aws ecs describe-task-definition --task-definition "$(aws ecs describe-services --cluster planwise-dev \
    --services api --query 'services[0].taskDefinition' --output text)" \
    --query 'taskDefinition.{revision: revision, image: containerDefinitions[0].image, environment: containerDefinitions[0].environment}' --output json
banner "release etl to dev: a new revision in each job family, the nightly rule follows"
run "$deploy" --config "$config" release dev etl --version "$version"
aws events list-targets-by-rule --rule etl-nightly-dev --query 'Targets[0].EcsParameters.TaskDefinitionArn' --output text
run "$deploy" --config "$config" promote dev staging etl
banner "promote api to staging and prod: CodeDeploy blue/green (AppSpec, lifecycle events, traffic shift)"
run "$deploy" --config "$config" promote dev staging api
run "$deploy" --config "$config" promote staging prod api --approve
aws ecs describe-services --cluster planwise-prod --services api --query 'services[0].taskDefinition' --output text

banner "release the DAG folder to dev: only what Airflow reads, checked as Python, synced by content"
run "$deploy" --config "$config" release dev dags --version "$version"
aws s3 ls --recursive s3://planwise-airflow-dev/dags/
run "$deploy" --config "$config" release dev dags --version "$version"
run "$deploy" --config "$config" promote dev staging dags
banner "a DAG change released to dev, then rolled back: the previous S3 versions copied back"
printf 'from airflow.decorators import dag\n\n\n@dag(dag_id="hotfix", schedule=None)\ndef hotfix():\n    pass\n\n\nhotfix()\n' >"$dag_copy/hotfix.py"
run "$deploy" --config "$config" release dev dags --version "${version}-hotfix"
aws s3 ls --recursive s3://planwise-airflow-dev/dags/
run "$deploy" --config "$config" rollback dev dags
aws s3 ls --recursive s3://planwise-airflow-dev/dags/
if aws s3 ls s3://planwise-airflow-dev/dags/hotfix.py >/dev/null 2>&1; then
    echo "demo: hotfix.py is still in the bucket after the rollback" >&2; exit 1
fi

banner "release the resize function to dev: a byte-identical zip, a version, the alias moved by canary"
run "$deploy" --config "$config" release dev resize --version "$version"
aws lambda get-alias --function-name planwise-resize-dev --name live --output json
run "$deploy" --config "$config" promote dev staging resize

banner "a locked, recorded change of dev through the library (deploy-core/examples/embed.rs)"
"$embed" "$config" dev api
run "$deploy" --config "$config" lock dev status
run "$deploy" --config "$config" history
run "$deploy" --config "$config" status
echo
echo "demo finished: api rolled out to dev on ecs-rolling and to staging and prod by CodeDeploy blue/green, etl through its families, the DAG folder synced, promoted and a change rolled back, the resize function shifted by canary and promoted (ECS and CodeDeploy lifecycles played by the scripted doubles in front of moto); see README.md"
