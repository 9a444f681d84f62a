#!/usr/bin/env bash
# Image push, `deploy publish` next to `skopeo copy`, in one run against fresh local registries:
# a 4-layer image of about 226 MiB of random data as an OCI layout (plus a 1 GiB single-layer
# image for the memory check). Prints wall times, ratios and peak RSS.
#   bash bench/image.sh
# Also: promotion across registries next to `skopeo copy` registry to registry, and within one
# registry (mounts).
# Targets: first push <= 0.7x skopeo; unchanged republish <= 0.1x the first push; peak RSS
# <= 40 MiB and not growing with layer size.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deploy-target}"
profile="${BENCH_PROFILE:-release}"
bash scripts/emulators.sh install >/dev/null
[ -x /usr/bin/time ] || apt-get install -y --no-install-recommends time >/dev/null
cargo build --quiet --profile "$([ "$profile" = release ] && echo release || echo dev)" -p deploy-cli --bin deploy
deploy="${CARGO_TARGET_DIR}/$([ "$profile" = release ] && echo release || echo debug)/deploy"

work="$(mktemp -d)"
export DEPLOY_EMULATORS_DIR="$work/emulators"
trap 'bash scripts/emulators.sh stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bash scripts/emulators.sh start >/dev/null
# shellcheck disable=SC1091
. "$DEPLOY_EMULATORS_DIR/env"

# make_layout DIR SIZE_MIB...: an OCI layout with one random, uncompressed layer per size.
make_layout() {
    python3 - "$@" <<'PY'
import hashlib, json, os, sys
root, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
blobs = os.path.join(root, "blobs", "sha256"); os.makedirs(blobs, exist_ok=True)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
layers = []
for mib in sizes:
    h = hashlib.sha256(); path = os.path.join(root, "layer.tmp"); size = 0
    with open(path, "wb") as f:
        for _ in range(mib):
            chunk = os.urandom(1 << 20); h.update(chunk); f.write(chunk); size += len(chunk)
    os.rename(path, os.path.join(blobs, h.hexdigest()))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + h.hexdigest(), "size": size})
config = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode())
manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"), "layers": layers}).encode())
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(root, "oci-layout"), "w"))
json.dump({"schemaVersion": 2, "manifests": [dict(manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
    annotations={"org.opencontainers.image.ref.name": "latest"})]}, open(os.path.join(root, "index.json"), "w"))
PY
}

make_layout "$work/image" 80 64 50 32      # 226 MiB in 4 layers

# A second registry, standing for another account's or region's.
far_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
far_registry="127.0.0.1:${far_port}"
mkdir -p "$work/far"
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$work/far/storage" "$far_registry" >"$work/far/config.yml"
docker-registry serve "$work/far/config.yml" >"$work/far/log" 2>&1 &
far_pid=$!
trap 'kill "$far_pid" 2>/dev/null || true; bash scripts/emulators.sh stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fsS "http://${far_registry}/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
make_layout "$work/big" 1024               # one 1 GiB layer

cat > "$work/deploy.toml" <<TOML
project = "bench"
[environments.bench]
region = "eu-west-1"
account = "123456789012"
state_bucket = "bench-deploy-state"
endpoints = { registry = "http://${DEPLOY_TEST_REGISTRY}" }
[environments.near]                  # same registry: a promotion mounts every blob
region = "eu-west-1"
account = "123456789012"
state_bucket = "bench-deploy-state"
endpoints = { registry = "http://${DEPLOY_TEST_REGISTRY}" }
[environments.near.overrides.image]
repository = "bench/near"
[environments.far]                   # another registry: a promotion streams every blob
region = "eu-west-1"
account = "123456789012"
state_bucket = "bench-deploy-state"
endpoints = { registry = "http://${far_registry}" }
[environments.far.overrides.image]
repository = "bench/far"
[artifacts.image]
kind = "image"
repository = "bench/deploy"
source = "oci:./image:latest"
create_repository = true
rollout = { strategy = "none" }
[artifacts.big]
kind = "image"
repository = "bench/big"
source = "oci:./big:latest"
create_repository = true
TOML
aws s3 mb s3://bench-deploy-state >/dev/null

# timed NAME CMD...: wall seconds and peak RSS (KiB) of one run, from /usr/bin/time.
timed() {
    local name="$1"; shift
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
    read -r secs rss <"$work/$name.time"
    printf '%-28s %8.2f s  %8.1f MiB peak RSS\n' "$name" "$secs" "$(awk "BEGIN { print $rss / 1024 }")"
    eval "${name//-/_}_secs=$secs; ${name//-/_}_rss=$rss"
}

echo "image: $(du -sm "$work/image" | cut -f1) MiB in 4 layers; registry ${DEPLOY_TEST_REGISTRY}"
timed skopeo-copy skopeo copy --quiet --dest-tls-verify=false "oci:$work/image:latest" "docker://${DEPLOY_TEST_REGISTRY}/bench/skopeo:v1"
timed deploy-first "$deploy" --config "$work/deploy.toml" -q publish bench image --version v1
timed deploy-republish "$deploy" --config "$work/deploy.toml" -q publish bench image --version v1
timed deploy-1gib-layer "$deploy" --config "$work/deploy.toml" -q publish bench big --version v1

# Promotion: what `bench` runs, copied by digest. Across registries next to a registry-to-registry
# `skopeo copy`; within one registry every blob is mounted.
"$deploy" --config "$work/deploy.toml" -q release bench image --version v1 >/dev/null
timed skopeo-copy-across skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false \
    "docker://${DEPLOY_TEST_REGISTRY}/bench/deploy:v1" "docker://${far_registry}/bench/skopeo:v1"
timed deploy-promote-across "$deploy" --config "$work/deploy.toml" -q promote bench far image
timed deploy-promote-mount "$deploy" --config "$work/deploy.toml" -q promote bench near image
[ "$(skopeo inspect --tls-verify=false "docker://${far_registry}/bench/far:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" = \
  "$(skopeo inspect --tls-verify=false "docker://${DEPLOY_TEST_REGISTRY}/bench/deploy:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" ] \
    || { echo "promoted digest differs" >&2; exit 1; }

python3 - "$skopeo_copy_secs" "$deploy_first_secs" "$deploy_republish_secs" "$deploy_first_rss" "$deploy_1gib_layer_rss" \
    "$skopeo_copy_across_secs" "$deploy_promote_across_secs" "$deploy_promote_mount_secs" "$deploy_promote_across_rss" <<'PY'
import sys
skopeo, first, again, rss, rss_big, skopeo_across, across, mount, across_rss = map(float, sys.argv[1:])
def verdict(ok): return "met" if ok else "MISSED"
print(f"first push / skopeo copy:  {first / skopeo:.2f}x  (target <= 0.70: {verdict(first <= 0.7 * skopeo)})")
print(f"republish / first push:    {again / first:.2f}x  (target <= 0.10: {verdict(again <= 0.1 * first)})")
print(f"peak RSS 226 MiB image:    {rss / 1024:.1f} MiB, 1 GiB layer: {rss_big / 1024:.1f} MiB  (target <= 40 MiB, flat: {verdict(max(rss, rss_big) <= 40 * 1024)})")
print(f"promote across registries / skopeo copy registry to registry: {across / skopeo_across:.2f}x, peak RSS {across_rss / 1024:.1f} MiB")
print(f"promote within one registry (mounts): {mount:.2f} s, {mount / across:.2f}x the cross-registry promotion")
PY
