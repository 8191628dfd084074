#!/usr/bin/env bash
# The shared token cache at fleet scale: identity-service requests per token
# lifetime for 1, 3 and 10 replicas, memory backend vs redis backend, and
# the time a token fetch takes with and without Redis in the way (a cold
# miss waits exactly that long). No client load: the refreshers renew.
#
# usage: benches/load/fleet.sh            (LIFETIME=10 SECONDS_PER_RUN=35)
#        then, for throughput: benches/load/fleet.sh ab   (runs ab.sh with
#        the redis backend as B against memory as A, both orders)
set -euo pipefail
cd "$(dirname "$0")/../.."
LIFETIME=${LIFETIME:-10}
RUN=${SECONDS_PER_RUN:-35}
BASE=${BASE_PORT:-18600}
.ci/install-deps
cargo build --release --quiet --bin bearer-proxy
BP=${CARGO_TARGET_DIR:-$PWD/target}/release/bearer-proxy
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on $1" >&2; exit 1; }

IDP=$BASE REDIS=$((BASE + 1))
"$BP" keygen -o "$work/cache.key" 2>/dev/null
redis-server --bind 127.0.0.1 --port "$REDIS" --save "" --appendonly no --dir "$work" >/dev/null &
pids+=($!)
wait_port "$REDIS"

config() { # index backend file
    local cache=""
    [ "$2" = redis ] && cache="cache: { backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS/0\", encryption_key_file: cache.key, key_prefix: \"bench-$RANDOM:\" } }"
    cat > "$3" <<YAML
server: { listen: ["127.0.0.1:$((BASE + 100 + 2 * $1))"], threads: 1 }
admin: { listen: "127.0.0.1:$((BASE + 101 + 2 * $1))" }
$cache
clients:
  bench:
    token_url: "http://127.0.0.1:$IDP/oauth2/v1/token"
    client_id: bench
    client_secret: bench-secret
    scopes: ["https://localhost:443urn:opc:resource:consumer::all"]
routes:
  - { name: oic, upstream: "https://localhost:1", client: bench, access: { allow_any: true } }
YAML
}

metric() { # admin-port sample → value (0 if absent)
    curl -s "http://127.0.0.1:$1/metrics" | awk -v s="$2" 'index($0, s) == 1 { print $2; found = 1 } END { if (!found) print 0 }'
}

run() { # backend replicas
    local emu n=$2 i fetched=0 dsum=0 dcount=0 p
    "$BP" emulator --listen "127.0.0.1:$IDP" --client bench:bench-secret --token-lifetime "${LIFETIME}s" >/dev/null 2>&1 &
    emu=$!
    wait_port "$IDP"
    local started=() ; local t0=$SECONDS
    # The key prefix differs per run (config draws it), so runs share nothing.
    local prefix_run=$RANDOM
    for i in $(seq 1 "$n"); do
        config "$i" "$1" "$work/r$i.yaml"
        sed -i "s/bench-[0-9]*:/bench-$prefix_run:/" "$work/r$i.yaml"
        "$BP" --log-level warn run -c "$work/r$i.yaml" > "$work/r$i.log" 2>&1 &
        started+=($!)
    done
    for i in $(seq 1 "$n"); do wait_port "$((BASE + 100 + 2 * i))"; done
    sleep "$RUN"
    for i in $(seq 1 "$n"); do
        p=$((BASE + 101 + 2 * i))
        fetched=$(awk -v a="$fetched" -v b="$(metric "$p" 'bearer_proxy_token_fetch_total{client="bench",grant="client_credentials",outcome="success"}')" 'BEGIN { print a + b }')
        dsum=$(awk -v a="$dsum" -v b="$(metric "$p" 'bearer_proxy_token_fetch_duration_seconds_sum{client="bench"}')" 'BEGIN { print a + b }')
        dcount=$(awk -v a="$dcount" -v b="$(metric "$p" 'bearer_proxy_token_fetch_duration_seconds_count{client="bench"}')" 'BEGIN { print a + b }')
    done
    local elapsed=$((SECONDS - t0))
    kill "${started[@]}" "$emu" 2>/dev/null || true
    wait "${started[@]}" "$emu" 2>/dev/null || true
    awk -v b="$1" -v n="$n" -v f="$fetched" -v e="$elapsed" -v l="$LIFETIME" -v s="$dsum" -v c="$dcount" 'BEGIN {
        printf "  %-6s %2d replica(s): %3d token requests in %ds = %5.2f per %ds token lifetime; fetch %6.1f ms mean (%d fetches)\n",
            b, n, f, e, f / (e / l), l, (c > 0 ? s / c * 1000 : 0), c }'
}

if [ "${1:-}" = ab ]; then
    extra="cache: { backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS/0\", encryption_key_file: $work/cache.key } }"
    B_EXTRA="$extra" benches/load/ab.sh
    A_EXTRA="$extra" benches/load/ab.sh
    exit 0
fi
echo "== fleet: ${LIFETIME}s tokens, ${RUN}s per run, no load; $(nproc) cores"
for n in 1 3 10; do
    run memory "$n"
    run redis "$n"
done
