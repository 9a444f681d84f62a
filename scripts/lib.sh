# shellcheck shell=bash
# Shared helpers for the project's shell scripts. Source it; do not run it.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Repository root: the parent of the directory holding this file.
# shellcheck disable=SC2034 # used by the scripts that source this file
DEPLOY_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Where tools installed for development and tests live (kept across checkouts).
DEPLOY_TOOLS_DIR="${DEPLOY_TOOLS_DIR:-${HOME:-/root}/.cache/deploy-tools}"

_deploy_log_prefix="${DEPLOY_LOG_PREFIX:-$(basename "$0" .sh)}"

# log MESSAGE...  -- progress and diagnostics, on stderr.
log() { printf '%s: %s\n' "$_deploy_log_prefix" "$*" >&2; }

# warn MESSAGE...
warn() { printf '%s: warning: %s\n' "$_deploy_log_prefix" "$*" >&2; }

# die MESSAGE...  -- print and exit 1.
die() {
    printf '%s: error: %s\n' "$_deploy_log_prefix" "$*" >&2
    exit 1
}

# have COMMAND  -- true if COMMAND is on PATH.
have() { command -v "$1" >/dev/null 2>&1; }

# as_root COMMAND...  -- run as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif have sudo; then
        sudo -n "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# now_ms  -- wall clock in milliseconds, for timings.
now_ms() {
    local s
    s="$(date +%s%N 2>/dev/null)"
    case "$s" in
        *N) echo $(($(date +%s) * 1000)) ;;
        *) echo $((s / 1000000)) ;;
    esac
}

# elapsed T0_MS  -- seconds since T0_MS (from now_ms), e.g. "2.4s".
elapsed() {
    local d=$(($(now_ms) - $1))
    printf '%d.%ds\n' $((d / 1000)) $((d % 1000 / 100))
}
