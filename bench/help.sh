#!/usr/bin/env bash
# Start-up time of `deploy --help` (target: under 20 ms), next to `git --help` as a reference
# for a native command that prints help. Uses the release build.
#   bash bench/help.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deploy-target}"
profile="${BENCH_PROFILE:-release}"
cargo build --quiet --profile "$([ "$profile" = release ] && echo release || echo dev)" -p deploy-cli --bin deploy
deploy="${CARGO_TARGET_DIR}/$([ "$profile" = release ] && echo release || echo debug)/deploy"

# Median wall time in milliseconds of `runs` runs of a command.
median_ms() {
    python3 - "$runs" "$@" <<'PY'
import subprocess, sys, time
runs = int(sys.argv[1]); cmd = sys.argv[2:]
times = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times.append((time.perf_counter() - start) * 1000)
times.sort()
print(f"{times[len(times)//2]:.2f} {times[0]:.2f} {times[-1]:.2f}")
PY
}

read -r d_med d_min d_max < <(median_ms "$deploy" --help)
read -r g_med g_min g_max < <(median_ms git --help)
rss_kb=$(/usr/bin/time -f '%M' "$deploy" --help 2>&1 >/dev/null | tail -1)
printf '%-16s median %7s ms  (min %s, max %s)\n' "deploy --help" "$d_med" "$d_min" "$d_max"
printf '%-16s median %7s ms  (min %s, max %s)\n' "git --help" "$g_med" "$g_min" "$g_max"
python3 -c "print(f'ratio deploy/git: {$d_med/$g_med:.2f}x; peak RSS {int(\"$rss_kb\")/1024:.1f} MiB; target: median < 20 ms -> ' + ('met' if $d_med < 20 else 'MISSED'))"
