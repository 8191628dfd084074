#!/usr/bin/env bash
# Proves the container image's runtime stage without a Docker engine: a
# Debian bookworm root filesystem like debian:bookworm-slim (debootstrap,
# cached under target/), prepared as the Dockerfile's runtime stage does
# (ca-certificates, user 10001), with the shipped binary (profile dist,
# no emulator) and conf/container.yaml. Then `check` and a short `run` as
# uid 10001 (chroot --userspec), against the bundled identity-service
# emulator and a plain HTTP upstream running outside, asserting that a
# request is served with a token.
#   usage: deploy/runtime-check.sh [path/to/bearer-proxy]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN=${1:-$TARGET/dist/bearer-proxy}
[ -x "$BIN" ] || cargo build --quiet --profile dist --locked --no-default-features --bin bearer-proxy
HOST_BP=$TARGET/debug/bearer-proxy   # the test build: it has the emulator
[ -x "$HOST_BP" ] || cargo build --quiet --bin bearer-proxy
ROOT=$TARGET/runtime-rootfs
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ ! -f "$ROOT/.complete" ]; then
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    rm -rf "$ROOT"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$ROOT" "$MIRROR" >/dev/null
    chroot "$ROOT" useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bearer-proxy
    touch "$ROOT/.complete"
fi
install -m 0755 "$BIN" "$ROOT/usr/local/bin/bearer-proxy"
mkdir -p "$ROOT/etc/bearer-proxy"
cp conf/container.yaml "$ROOT/etc/bearer-proxy/config.yaml"
printf 'ci:%s\n' "$(printf '%s' runtime-key | sha256sum | cut -d' ' -f1)" > "$ROOT/etc/bearer-proxy/api-keys"

work=$(mktemp -d)
pids=()
cleanup() {
    # `in_image run … &` is a subshell whose child is the proxy (env execs
    # chroot, which execs it): stop the child too, or it outlives the check
    # and keeps ports 8080 and 9090.
    for p in "${pids[@]}"; do
        pkill -TERM -P "$p" 2>/dev/null || true
        kill "$p" 2>/dev/null || true
    done
    umount "$ROOT/proc" "$ROOT/dev" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }

IDP=18700 UP=18701
"$HOST_BP" emulator --listen "127.0.0.1:$IDP" --client runtime-id:runtime-secret >/dev/null 2>&1 &
pids+=($!)
mkdir -p "$work/www/ic" && echo ok > "$work/www/ic/index.html"
(cd "$work/www" && exec python3 -m http.server --bind 127.0.0.1 "$UP" >/dev/null 2>&1) &
pids+=($!)
wait_port "$IDP"; wait_port "$UP"

CHROOT=$(command -v chroot)
in_image() { # the container's environment, as uid 10001
    env -i PATH=/usr/local/bin:/usr/bin:/bin \
        OIC_TOKEN_URL="http://127.0.0.1:$IDP/oauth2/v1/token" OIC_CLIENT_ID=runtime-id \
        OIC_CLIENT_SECRET=runtime-secret OIC_SCOPE="https://oic.example.com:443urn:opc:resource:consumer::all" \
        OIC_UPSTREAM="http://127.0.0.1:$UP" API_KEYS_FILE=/etc/bearer-proxy/api-keys \
        "$CHROOT" --userspec=10001:10001 "$ROOT" /usr/local/bin/bearer-proxy --log-format json "$@"
}
in_image check -c /etc/bearer-proxy/config.yaml > "$work/check.out"
in_image run -c /etc/bearer-proxy/config.yaml > "$work/run.log" 2>&1 &
pids+=($!)
wait_port 8080
status=$(curl -s -o "$work/body" -w '%{http_code}' -H 'X-API-Key: runtime-key' http://127.0.0.1:8080/ic/)
[ "$status" = 200 ] || { echo "runtime check: GET /ic/ answered $status" >&2; cat "$work/run.log" >&2; exit 1; }
grep -q '"token_source":"idp"' <(curl -s http://127.0.0.1:9090/status | tr -d ' \n') \
    || { echo "runtime check: no token in /status" >&2; exit 1; }
user=$(ps -o user= -p "$(pgrep -f 'bearer-proxy --log-format json run' | head -1)")
[ "$user" = 10001 ] || [ "$user" = bearer-proxy ] || { echo "runtime check: runs as $user, not 10001" >&2; exit 1; }
size=$(stat -c %s "$BIN")
echo "runtime check: bookworm root, uid 10001: check ok, GET /ic/ -> 200 with a token; binary $((size / 1024 / 1024)) MiB ($size bytes), $(( $(date +%s) - started ))s"
