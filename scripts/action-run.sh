#!/usr/bin/env bash
# Runs `deploy` for the GitHub Action (action.yml) from its inputs, passed as INPUT_* variables
# (never pasted into the script). `deploy` itself writes the step outputs ($GITHUB_OUTPUT) and
# the job summary ($GITHUB_STEP_SUMMARY); its exit code is the step's.
set -euo pipefail
fail() { echo "::error title=deploy action::$*"; exit 2; }

command="${INPUT_COMMAND:-}"
environment="${INPUT_ENVIRONMENT:-}"
from="${INPUT_FROM:-}"
read -r -a artifacts <<<"${INPUT_ARTIFACTS:-}"
need() { [ -n "$2" ] || fail "the $command command needs the '$1' input"; }

args=(--config "${INPUT_CONFIG:-deploy.toml}")
case "$command" in
    release | publish | plan)
        need environment "$environment"
        args+=("$command" "$environment" "${artifacts[@]}")
        [ -z "${INPUT_VERSION:-}" ] || args+=(--version "$INPUT_VERSION")
        ;;
    promote)
        need from "$from"
        need environment "$environment"
        args+=(promote "$from" "$environment" "${artifacts[@]}")
        ;;
    rollback)
        need environment "$environment"
        args+=(rollback "$environment" "${artifacts[@]}")
        [ -z "${INPUT_RELEASE:-}" ] || args+=(--to "$INPUT_RELEASE")
        ;;
    diff)
        need environment "$environment"
        need from "$from"
        args+=(diff "$environment" "$from" "${artifacts[@]}")
        ;;
    status | history)
        args+=("$command")
        [ -z "$environment" ] || args+=("$environment")
        ;;
    validate) args+=(validate) ;;
    *) fail "unknown command '$command'; use release, publish, plan, promote, rollback, diff, status, history or validate" ;;
esac
case "${INPUT_APPROVE:-false}" in
    true) case "$command" in
        release | publish | promote | rollback) args+=(--approve) ;;
        *) fail "approve applies to release, publish, promote and rollback, not $command" ;;
    esac ;;
    false | "") ;;
    *) fail "approve is 'true' or 'false', not '${INPUT_APPROVE}'" ;;
esac
exec deploy "${args[@]}"
