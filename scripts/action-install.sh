#!/usr/bin/env bash
# Installs `deploy` for the GitHub Action (action.yml). With no `deploy-version` and a `deploy`
# already on the PATH, that one is used. Otherwise the release asset for this runner (Linux
# x86_64 or arm64) is downloaded from the action's own repository (the version asked for, or the
# one the action's ref names, `v1.2.3`), its SHA-256 checked against the published sum, and its
# folder added to the PATH of the job's later steps.
set -euo pipefail
fail() { echo "::error title=deploy action::$*"; exit 1; }

version="${DEPLOY_VERSION:-}"
if [ -z "$version" ] && command -v deploy >/dev/null 2>&1; then
    echo "using $(command -v deploy) ($(deploy --version))"
    exit 0
fi
if [ -z "$version" ]; then
    case "${ACTION_REF:-}" in
        v[0-9]*) version="${ACTION_REF#v}" ;;
        *) fail "no deploy on the PATH and no deploy-version input, and the action's ref (${ACTION_REF:-none}) is not a release tag; set deploy-version: 1.2.3" ;;
    esac
fi
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] ||
    fail "deploy-version '$version' is not a release version such as 1.2.3"
repo="${ACTION_REPOSITORY:-}"
[[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] ||
    fail "cannot tell which repository publishes deploy (github.action_repository is '$repo')"
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
    Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
    *) fail "no deploy release for $(uname -s) $(uname -m); put a deploy built for it on the PATH" ;;
esac

asset="deploy-${version}-${target}.tar.gz"
base="${GITHUB_SERVER_URL:-https://github.com}/${repo}/releases/download/v${version}"
dir="${RUNNER_TEMP:-/tmp}/deploy-${version}-${target}"
mkdir -p "$dir"
for file in "$asset" "$asset.sha256"; do
    curl --fail --silent --show-error --location --retry 3 --output "$dir/$file" "$base/$file" ||
        fail "cannot download $base/$file"
done
(cd "$dir" && sha256sum --check --strict --quiet "$asset.sha256") ||
    fail "$asset does not match its published SHA-256; not installed"
tar --extract --gzip --file "$dir/$asset" --directory "$dir" deploy
echo "$dir" >>"${GITHUB_PATH:?GITHUB_PATH is not set: run this as a GitHub Actions step}"
echo "installed $("$dir/deploy" --version) from $base/$asset (SHA-256 checked)"
