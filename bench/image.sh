#!/usr/bin/env bash
# Image push, `deploy publish` next to `skopeo copy`, in one run against fresh local registries:
# a 4-layer image of about 226 MiB of random data as an OCI layout (plus a 1 GiB single-layer
# image for the memory check). Prints wall times, ratios and peak RSS.
#   bash bench/image.sh
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
make_layout "$work/big" 1024               # one 1 GiB layer

cat > "$work/deploy.toml" <<TOML
project = "bench"
[environments.bench]
region = "eu-west-1"
account = "123456789012"
state_bucket = "bench-deploy-state"
endpoints = { registry = "http://${DEPLOY_TEST_REGISTRY}" }
[artifacts.image]
kind = "image"
repository = "bench/deploy"
source = "oci:./image:latest"
create_repository = true
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

python3 - "$skopeo_copy_secs" "$deploy_first_secs" "$deploy_republish_secs" "$deploy_first_rss" "$deploy_1gib_layer_rss" <<'PY'
import sys
skopeo, first, again, rss, rss_big = map(float, sys.argv[1:])
def verdict(ok): return "met" if ok else "MISSED"
print(f"first push / skopeo copy:  {first / skopeo:.2f}x  (target <= 0.70: {verdict(first <= 0.7 * skopeo)})")
print(f"republish / first push:    {again / first:.2f}x  (target <= 0.10: {verdict(again <= 0.1 * first)})")
print(f"peak RSS 226 MiB image:    {rss / 1024:.1f} MiB, 1 GiB layer: {rss_big / 1024:.1f} MiB  (target <= 40 MiB, flat: {verdict(max(rss, rss_big) <= 40 * 1024)})")
PY
