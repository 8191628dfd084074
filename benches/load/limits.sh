#!/usr/bin/env bash
# What traffic limits cost, and how well a fleet holds one.
#
# usage: benches/load/limits.sh ab      ab.sh both orders at 1 and 2 threads:
#                                       a route with a per-caller rate and a
#                                       concurrency ceiling (memory backend,
#                                       never refusing) against the same
#                                       route without limits
#        benches/load/limits.sh redis   the same pair on the redis backend:
#                                       CPU, p50/p99 (wrk --latency) and
#                                       Redis round trips per request
#        benches/load/limits.sh fleet   3 replicas sharing a 100/s rate for
#                                       FLEET_SECONDS (60), loaded past it:
#                                       admitted against the limit
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-ab}
LIMITS='limits: { per-key: { rate: 1000000/s, per: caller }, sync: { concurrency: 1000 } }'
ROUTE='limits: [per-key, sync]'

redis_up() { # port dir
    redis-server --bind 127.0.0.1 --port "$1" --save "" --appendonly no --dir "$2" >/dev/null &
    echo $!
}
evalsha_calls() { # port
    redis-cli -p "$1" INFO commandstats | awk -F'[=,:]' '/^cmdstat_evalsha/ { print $3; f = 1 } END { if (!f) print 0 }'
}

case "$MODE" in
ab)
    for t in 1 2; do
        THREADS=$t B_ROUTE="$ROUTE" B_EXTRA="$LIMITS" benches/load/ab.sh
        THREADS=$t NO_BUILD=1 A_ROUTE="$ROUTE" A_EXTRA="$LIMITS" benches/load/ab.sh
    done
    ;;
redis)
    . benches/load/common.sh
    ROUNDS=${ROUNDS:-5}
    rport=$((BASE + 91))
    rpid=$(redis_up "$rport" "$work")
    pids+=("$rpid")
    "$BP" keygen -o "$work/cache.key" 2>/dev/null
    bp_config "${THREADS:-2}" "$work/base.yaml"
    cache="cache: { backend: redis, redis: { url: \"redis://127.0.0.1:$rport/0\", encryption_key_file: cache.key } }"
    sed -e "s/127.0.0.1:$BPX/127.0.0.1:$((BPX + 10))/" -e "s/127.0.0.1:$ADM/127.0.0.1:$((ADM + 10))/" \
        "$work/base.yaml" > "$work/b.yaml"
    printf '    %s\n%s\n%s\n' "$ROUTE" "$LIMITS" "$cache" >> "$work/b.yaml"
    printf '%s\n' "$cache" >> "$work/base.yaml"
    "$BP" --log-level warn run -c "$work/base.yaml" > "$work/a.log" 2>&1 &
    a=$!; pids+=("$a")
    "$BP" --log-level warn run -c "$work/b.yaml" > "$work/b.log" 2>&1 &
    b=$!; pids+=("$b")
    wait_port "$BPX"; wait_port "$((BPX + 10))"
    TCK=$(getconf CLK_TCK)
    one() { # pid port → "req/s cpu-s-per-100k p50-ms p99-ms requests"
        local t0 t1 out
        t0=$(cpu_ticks "$1")
        out=$(wrk -t1 -c16 -d6s --latency -H "X-API-Key: bench-key" "http://127.0.0.1:$2/ic/api/x")
        t1=$(cpu_ticks "$1")
        if grep -q Non-2xx <<< "$out"; then echo "non-2xx answers" >&2; exit 1; fi
        awk -v d=$((t1 - t0)) -v t="$TCK" '
            function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
            /^Requests\/sec/ { rps = $2 } / 50%/ { p50 = ms($2) } / 99%/ { p99 = ms($2) } /requests in/ { n = $1 }
            END { printf "%s %.3f %.3f %.3f %d\n", rps, d / t / n * 100000, p50, p99, n }' <<< "$out"
    }
    echo "== redis backend, ${THREADS:-2} thread(s), wrk -t1 -c16 --latency, 6 s rounds: A no limits, B $ROUTE ($LIMITS)"
    : > "$work/rounds"
    for r in $(seq 1 "$ROUNDS"); do
        read -r ar ac a50 a99 an <<< "$(one "$a" "$BPX")"
        e0=$(evalsha_calls "$rport")
        read -r br bc b50 b99 bn <<< "$(one "$b" "$((BPX + 10))")"
        e1=$(evalsha_calls "$rport")
        echo "$ar $ac $a50 $a99 $br $bc $b50 $b99 $(awk -v e=$((e1 - e0)) -v n="$bn" 'BEGIN { print e / n }')" >> "$work/rounds"
        printf '  round %s  A %9s req/s %6s s/100k p50 %6s p99 %6s ms   B %9s req/s %6s s/100k p50 %6s p99 %6s ms  %s EVALSHA/request\n' \
            "$r" "$ar" "$ac" "$a50" "$a99" "$br" "$bc" "$b50" "$b99" "$(tail -1 "$work/rounds" | awk '{print $9}')"
    done
    awk "$AWK_STATS"'
        { n++; c[n] = $6 / $2; p50[n] = $7 - $3; p99[n] = $8 - $4; rt[n] = $9 }
        END {
            printf "B/A CPU per request: %s\n", spread(c, n)
            printf "added p50 ms: %s; added p99 ms: %s\n", spread(p50, n), spread(p99, n)
            printf "Redis round trips per request: %s\n", spread(rt, n)
        }' "$work/rounds"
    ;;
fleet)
    . benches/load/common.sh
    SECONDS_RUN=${FLEET_SECONDS:-60}
    rport=$((BASE + 91))
    rpid=$(redis_up "$rport" "$work")
    pids+=("$rpid")
    "$BP" keygen -o "$work/cache.key" 2>/dev/null
    bp_config 1 "$work/base.yaml"
    for i in 0 1 2; do
        sed -e "s/127.0.0.1:$BPX/127.0.0.1:$((BPX + 20 * i))/" -e "s/127.0.0.1:$ADM/127.0.0.1:$((ADM + 20 * i))/" \
            "$work/base.yaml" > "$work/r$i.yaml"
        printf '    limits: [fleet-rate]\nlimits: { fleet-rate: { rate: 100/s } }\n' >> "$work/r$i.yaml"
        printf 'cache: { backend: redis, redis: { url: "redis://127.0.0.1:%s/0", encryption_key_file: cache.key } }\n' "$rport" >> "$work/r$i.yaml"
        "$BP" --log-level warn run -c "$work/r$i.yaml" > "$work/r$i.log" 2>&1 &
        pids+=($!)
    done
    for i in 0 1 2; do wait_port "$((BPX + 20 * i))"; done
    for i in 0 1 2; do
        wrk -t1 -c8 -d"${SECONDS_RUN}s" -H "X-API-Key: bench-key" "http://127.0.0.1:$((BPX + 20 * i))/ic/api/x" > "$work/w$i" &
        wp[i]=$!
    done
    wait "${wp[@]}"
    awk -v s="$SECONDS_RUN" '
        /requests in/ { total += $1 }
        /Non-2xx/ { refused += $5 }
        END {
            admitted = total - refused; limit = 100 * s + 100
            printf "fleet: 3 replicas, %d s, %d requests, %d admitted, %d refused (429)\n", s, total, admitted, refused
            printf "limit 100/s (burst 100) over %d s: %d; admitted / limit = %.4f (contract: <= 1.10)\n", s, limit, admitted / limit
        }' "$work"/w0 "$work"/w1 "$work"/w2
    ;;
*) echo "usage: $0 ab|redis|fleet" >&2; exit 2 ;;
esac
