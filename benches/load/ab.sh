#!/usr/bin/env bash
# Interleaved A/B of two bearer-proxy builds or settings under the same load:
# both run side by side, and rounds alternate A B A B … so the VM's drift
# hits both alike. Prints req/s and CPU per 100k requests per round and the
# median B/A ratios. On the 2-core VM, B gains 4–7 % from going second
# (the same pair run in both orders shows it), so run both orders: the
# geometric mean of B/A and 1 / (B/A with A and B swapped) cancels it.
#
# usage: B_SERVER="work_stealing: true" benches/load/ab.sh
#        A_BIN=/tmp/old-bearer-proxy benches/load/ab.sh
#        B_EXTRA='cache: { backend: redis, … }' benches/load/ab.sh
#        A_FLOOR=1 benches/load/ab.sh     pingora-floor as A (bearer-proxy / floor);
#        B_FLOOR=1 benches/load/ab.sh     and the other order
#        B_ROUTE='limits: [sync]' B_EXTRA='limits: { sync: { concurrency: 500 } }' benches/load/ab.sh
#        (A_BIN/B_BIN default to the release build; A_SERVER/B_SERVER are
#        extra `server:` settings, A_ROUTE/B_ROUTE extra keys of the route,
#        A_EXTRA/B_EXTRA extra top-level YAML;
#        THREADS=2 ROUNDS=5 DURATION=6 CONNS=64)
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
CONNS=${CONNS:-64}
. benches/load/common.sh
A_BIN=${A_BIN:-$BP}
B_BIN=${B_BIN:-$BP}
TCK=$(getconf CLK_TCK)

# bp_config writes `server: { listen: [...], threads: N }`; B listens ten
# ports higher.
with_server() { # extra-settings offset file
    local extra=${1:+, $1}
    sed -e "s/^server: { \(.*\) }$/server: { \1$extra }/" \
        -e "s/127.0.0.1:$BPX/127.0.0.1:$((BPX + $2))/" \
        -e "s/127.0.0.1:$ADM/127.0.0.1:$((ADM + $2))/" "$work/base.yaml" > "$3"
}
bp_config "$THREADS" "$work/base.yaml"
with_server "${A_SERVER:-}" 0 "$work/a.yaml"
with_server "${B_SERVER:-}" 10 "$work/b.yaml"
[ -n "${A_ROUTE:-}" ] && printf '    %s\n' "$A_ROUTE" >> "$work/a.yaml"
[ -n "${B_ROUTE:-}" ] && printf '    %s\n' "$B_ROUTE" >> "$work/b.yaml"
[ -n "${A_EXTRA:-}" ] && printf '%s\n' "$A_EXTRA" >> "$work/a.yaml"
[ -n "${B_EXTRA:-}" ] && printf '%s\n' "$B_EXTRA" >> "$work/b.yaml"
# One side: bearer-proxy with its config, or (A_FLOOR=1 / B_FLOOR=1)
# pingora-floor on the same port with the same thread count.
start_side() { # floor? binary config port log
    if [ "$1" = 1 ]; then
        "$FLOOR" --listen "127.0.0.1:$4" --upstream "127.0.0.1:$UP" --sni localhost --ca "$work/ca.pem" \
            --authorization-file "$work/authorization" --threads "$THREADS" > "$5" 2>&1 &
    else
        "$2" --log-level warn run -c "$3" > "$5" 2>&1 &
    fi
}
start_side "${A_FLOOR:-0}" "$A_BIN" "$work/a.yaml" "$BPX" "$work/a.log"
a=$!
pids+=("$a")
start_side "${B_FLOOR:-0}" "$B_BIN" "$work/b.yaml" "$((BPX + 10))" "$work/b.log"
b=$!
pids+=("$b")
wait_port "$BPX"
wait_port "$((BPX + 10))"

one() { # pid port → "req/s cpu-seconds-per-100k"
    local t0 t1 out rps n
    t0=$(cpu_ticks "$1")
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "X-API-Key: bench-key" "http://127.0.0.1:$2/ic/api/x")
    t1=$(cpu_ticks "$1")
    if grep -q Non-2xx <<< "$out"; then echo "non-2xx answers; figures would be wrong" >&2; exit 1; fi
    rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
    n=$(awk '/requests in/ {print $1}' <<< "$out")
    echo "$rps $(awk -v d=$((t1 - t0)) -v n="$n" -v t="$TCK" 'BEGIN { printf "%.3f", d / t / n * 100000 }')"
}
side() { [ "$1" = 1 ] && echo pingora-floor || echo "$2"; }
echo "== A: $(side "${A_FLOOR:-0}" "$A_BIN") ${A_SERVER:-} ${A_ROUTE:-} ${A_EXTRA:-}; B: $(side "${B_FLOOR:-0}" "$B_BIN") ${B_SERVER:-} ${B_ROUTE:-} ${B_EXTRA:-}; $THREADS thread(s), wrk -t1 -c$CONNS, ${DURATION}s rounds"
: > "$work/ab"
for r in $(seq 1 "$ROUNDS"); do
    read -r ar ac <<< "$(one "$a" "$BPX")"
    read -r br bc <<< "$(one "$b" "$((BPX + 10))")"
    echo "$ar $ac $br $bc" >> "$work/ab"
    printf '  round %s  A %10s req/s %7s s/100k   B %10s req/s %7s s/100k\n' "$r" "$ar" "$ac" "$br" "$bc"
done
awk "$AWK_STATS"'
     { n++; t[n] = $3 / $1; c[n] = $4 / $2 }
     END { printf "  B/A median: throughput %.3f, CPU per request %.3f (%d rounds)\n", median(t, n), median(c, n), n }' "$work/ab"
