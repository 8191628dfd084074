#!/usr/bin/env bash
# Heap profile of parked idle connections: bearer-proxy built with glibc's
# allocator (heaptrack sees only malloc/free) runs under heaptrack, holds
# IDLE (2,000) keep-alive connections — plain, or TLS with `tls` — and is
# stopped with SIGTERM while they are open, so what the connections hold
# is reported as still allocated at exit ("leaked"). Prints the largest
# such allocation sites with their counts.
#
# usage: benches/load/heap_idle.sh [plain|tls]   (IDLE=2000 TOP=30)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-plain}
IDLE=${IDLE:-2000}
TOP=${TOP:-30}
command -v heaptrack >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq heaptrack >/dev/null; }
. benches/load/common.sh
cargo build --release --quiet --features system-allocator --bin bearer-proxy
GLIBC_BP=$work/bearer-proxy-glibc
cp "$TARGET/release/bearer-proxy" "$GLIBC_BP"
cargo build --release --quiet --bin bearer-proxy --example idle_clients
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
TLS_PORT=$((BPX + 20))
bp_config 2 "$work/hp.yaml"
sed -i "s|^server: { \(.*\) }$|server: { \1, max_connections: $((IDLE + 16)), tls_listen: [{ address: \"127.0.0.1:$TLS_PORT\", cert_file: up.pem, key_file: up.key }] }|" "$work/hp.yaml"
heaptrack -o "$work/heap" "$GLIBC_BP" --log-level warn run -c "$work/hp.yaml" > "$work/heaptrack.log" 2>&1 &
ht=$!
wait_port "$BPX" 30
wait_port "$TLS_PORT" 30
args=(--addr "127.0.0.1:$BPX")
[ "$MODE" = tls ] && args=(--addr "127.0.0.1:$TLS_PORT" --ca "$work/ca.pem")
mkfifo "$work/hold"
"$TARGET/release/examples/idle_clients" "${args[@]}" --connections "$IDLE" --header "X-API-Key: bench-key" \
    < "$work/hold" > "$work/idle.out" &
holder=$!
exec 7>"$work/hold"
until grep -q ready "$work/idle.out" 2>/dev/null; do
    kill -0 "$holder" 2>/dev/null || { echo "idle_clients failed" >&2; exit 1; }
    sleep 0.2
done
sleep 1
kill -TERM "$(pgrep -f "^$GLIBC_BP --log-level")"
wait "$ht" || true
exec 7>&-
wait "$holder" || true
profile=$(ls "$work"/heap*.zst "$work"/heap*.gz 2>/dev/null | head -1 || true)
[ -n "$profile" ] || { cat "$work/heaptrack.log" >&2; exit 1; }
cp "$profile" "/tmp/heap-idle-$MODE.${profile##*.}"
echo "== $MODE: $IDLE parked connections; allocations still held at exit, largest first (profile: /tmp/heap-idle-$MODE.${profile##*.})"
# Each allocation site still held at exit: size, calls and its nearest
# frames outside the allocator and tokio's task plumbing.
heaptrack_print --print-leaks 1 --print-peaks 0 --print-allocators 0 --print-temporary 0 \
    --peak-limit "$TOP" --sub-peak-limit 8 "$profile" | python3 -c '
import re, sys
skip = re.compile(r"alloc::|raw_vec|__rdl_alloc|GlobalAlloc|_RNv|tokio::runtime|tokio::loom|std::panic|core::panic|catch_unwind|bytes::bytes_mut|<alloc|Box\$LT|boxed")
lines = sys.stdin.read().split("\n")
for i, line in enumerate(lines):
    m = re.match(r"^\s*(\S+) leaked over (\d+) calls from:$", line)
    if not m or int(m.group(2)) < 100:
        continue
    frames = []
    for f in lines[i + 1:i + 60]:
        f = f.strip()
        if not f or " leaked over " in f:
            break
        if f.startswith(("at ", "in ")) or skip.search(f):
            continue
        frames.append(re.sub(r"::h[0-9a-f]{16}$", "", f)[:150])
        if len(frames) == 3:
            break
    print(f"{m.group(1):>8} over {m.group(2):>6} calls: " + "  <-  ".join(frames))
'
