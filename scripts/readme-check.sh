#!/usr/bin/env bash
# The README as a new user follows it. Clones this repository's committed HEAD into an empty
# folder (nothing beside it), then runs there, as written in README.md:
#   - the demo (`bash scripts/demo.sh`);
#   - "Install" with the debug profile it names for trying deploy locally
#     (`cargo install --locked --debug --path deploy-cli`, into a folder of the check's own
#     instead of ~/.cargo, whose bin/ takes the place of ~/.cargo/bin in the PATH line);
#   - every shell block of "Your first project", in order, in one shell, with its placeholders
#     (path/to/your/project, /path/to/deploy, path/to/deploy.toml) made real, and what the
#     text asks of the reader done in between: a project with a Dockerfile, a dags/ folder and
#     a Lambda handler; the image archive built before `deploy validate` (with skopeo, as the
#     README says); a DAG changed where the block says "change a DAG file".
# Then it reads back through `aws` and `skopeo` what the blocks did. The tests command itself
# is what runs this script (`scripts/test.sh`); CI runs that on a clean clone.
#
#   bash scripts/readme-check.sh          (DEPLOY_README_KEEP=1 keeps the folder)
set -euo pipefail
DEPLOY_LOG_PREFIX=readme-check
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deploy-target}"

work="$(mktemp -d)"
clone="$work/deploy"
project="$work/myshop"
export CARGO_INSTALL_ROOT="$work/cargo"
cleanup() {
    if [ -f "$clone/.emulators/env" ]; then
        (cd "$clone" && bash scripts/emulators.sh stop >/dev/null 2>&1) || true
    fi
    if [ -z "${DEPLOY_README_KEEP:-}" ]; then rm -rf "$work"; else log "kept $work"; fi
}
trap cleanup EXIT

git clone --quiet --no-local "$DEPLOY_REPO_ROOT" "$clone"
log "cloned $(git -C "$clone" rev-parse --short HEAD) into $clone (nothing beside it)"

# blocks SECTION  -- the ```sh blocks of the README section SECTION (a `## ` heading), each
# followed by a line holding only NUL, for `read -d ''`.
blocks() {
    python3 - "$clone/README.md" "$1" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
section = re.search(r"^## " + re.escape(sys.argv[2]) + r"\n(.*?)(?=^## )", text, re.S | re.M)
if not section:
    sys.exit(f"README.md has no section `## {sys.argv[2]}`")
for block in re.findall(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M):
    sys.stdout.write(block + "\0")
PY
}

mapfile -d '' install < <(blocks "Install")
mapfile -d '' first < <(blocks "Your first project")
[ "${#install[@]}" -ge 2 ] || die "README.md: expected the install and PATH blocks under ## Install"
[ "${#first[@]}" -eq 5 ] || die "README.md: expected 5 shell blocks under ## Your first project (steps 1 to 4 and stopping the emulators), found ${#first[@]}"
# shellcheck disable=SC2016 # the README's text, not expanded
for want in "cargo install --locked --path deploy-cli" 'export PATH="$HOME/.cargo/bin:$PATH"' \
    "cd path/to/your/project" "/path/to/deploy/scripts/provision-project.py" \
    "# change a DAG file or the handler, then"; do
    grep -qF -- "$want" <<<"${install[*]} ${first[*]}" || die "README.md no longer says: $want"
done

step() { printf '\n== readme-check: %s\n' "$*"; }

if [ -z "${DEPLOY_README_SKIP_DEMO:-}" ]; then
    step "the demo: bash scripts/demo.sh"
    started=$(now_ms)
    (cd "$clone" && bash scripts/demo.sh)
    log "demo passed in $(elapsed "$started")"
fi

# The script of the reader's session: the README's blocks, as written but for the placeholders,
# and the reader's own actions between them.
session="$work/session.sh"
{
    echo 'set -euxo pipefail'
    echo "cd '$clone'"
    printf '%s\n' "${install[0]//--locked --path/--locked --debug --path}"
    printf '%s\n' "${install[1]//\$HOME\/.cargo\/bin/\$CARGO_INSTALL_ROOT/bin}"
    printf '%s\n' "${first[0]}"
    cat <<EOF
# The reader's project: an image, a DAG folder, a Lambda handler.
mkdir -p '$project/dags' '$project/lambdas/greet'
printf 'FROM scratch\n' >'$project/Dockerfile'
printf 'from datetime import datetime\n# v1\n' >'$project/dags/hello.py'
printf 'def handler(event, context):\n    return "hello"\n' >'$project/lambdas/greet/handler.py'
EOF
    printf '%s\n' "${first[1]//path\/to\/your\/project/$project}"
    cat <<EOF
# "build the tarballs before deploy validate": the archive deploy.toml names, with skopeo.
archive=\$(grep -o 'docker-archive:./build/[a-z0-9-]*.tar' deploy.toml | head -n 1)
name=\$(basename "\$archive" .tar)
mkdir -p build
skopeo copy --quiet 'oci:$clone/examples/planwise/build/api' "docker-archive:build/\$name.tar:\$name:latest"
EOF
    block="${first[2]//\/path\/to\/deploy/$clone}"
    printf '%s\n' "${block//path\/to\/deploy.toml/$project/deploy.toml}"
    change="printf '# v2\\n' >>dags/hello.py   # the reader's change: a DAG file"
    printf '%s\n' "${first[3]//\# change a DAG file or the handler, then/"$change"}"
    cat <<EOF
# What the blocks did, read back through aws and skopeo: the DAG as v1 had it again (v2 changed
# only the DAG: the image and the handler were unchanged and stay on v1's), the alias on the
# function's first version, the image in the registry, the rollback recorded.
test "\$(aws s3 cp s3://myshop-airflow-dev/dags/hello.py -)" = "\$(printf 'from datetime import datetime\n# v1')"
test "\$(aws lambda get-alias --function-name myshop-greet-dev --name live --query FunctionVersion --output text)" = 1
skopeo inspect --tls-verify=false "docker://\${DEPLOY_ENDPOINT_URL_REGISTRY#http://}/myshop/\$name:v1" >/dev/null
deploy history dev | grep -E ' dags +rollback .* ok '
deploy history dev | grep -E ' dags +release .* v2 .* ok '
cd '$clone'
EOF
    printf '%s\n' "${first[4]}"
    echo 'test ! -e .emulators/env'
} >"$session"

step "Install and Your first project, as written (the session: $session)"
started=$(now_ms)
env -u DEPLOY_TEST_MOTO_URL -u DEPLOY_TEST_REGISTRY -u AWS_ENDPOINT_URL bash "$session"
log "Install and Your first project passed in $(elapsed "$started")"
