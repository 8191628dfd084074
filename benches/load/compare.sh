#!/usr/bin/env bash
# Side-by-side load comparison on loopback, bounded in time:
#   load generator (wrk) -> proxy under test (plain HTTP, keep-alive)
#                        -> one HTTPS upstream (nginx answering a small 200)
# Systems, alternated in every round with identical settings:
#   direct         wrk straight to the HTTPS upstream (reference only)
#   nginx          nginx reverse proxy adding a fixed Authorization header
#   haproxy        HAProxy (Debian's), `http-request set-header Authorization`,
#                  nbthread = the thread setting
#   caddy          Caddy (Debian's, Go), `header_up Authorization`,
#                  GOMAXPROCS = the thread setting
#   pingora-floor  minimal pingora proxy adding a fixed header (benches/load/pingora_floor.rs)
#   bearer-proxy   the real binary: one route, API-key access check, token
#                  from the cache (the bundled emulator is the identity service)
#
# Two modes (MODES="saturation fixed", both by default):
#   saturation  wrk, as fast as answers come: throughput, CPU per request
#   fixed       benches/load/paced_load.rs at RATE req/s, below every
#               proxy's saturation (Caddy's is ~6,000 req/s on one thread):
#               the latency each proxy adds over `direct` at p50/p99/p99.9,
#               what ordinary traffic feels. Each run first warms up for 0.5 s.
# The defaults keep a cold run (release build included) under 10 minutes
# on a 2-core VM; MODES=fixed RATE_DURATION=10 gives steadier p99.9.
#
# usage: benches/load/compare.sh   (ROUNDS=3 DURATION=4 CONNS=64 THREADS="1 2"
#                                   RATE=2000 RATE_DURATION=2 RATE_CONNS=50)
#        PERF_DIR=/tmp/prof benches/load/compare.sh   also records a `perf` profile of
#        each proxy in round 1 (flat reports in PERF_DIR/*.txt; needs perf)
#        RAW_DIR=/tmp/raw benches/load/compare.sh     keeps every wrk report
#        TIMES_DIR=/tmp/times benches/load/compare.sh every fixed-rate request's
#        start and latency, per system and round (paced_load --times)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
CONNS=${CONNS:-64}
THREADS=${THREADS:-"1 2"}
RATE=${RATE:-2000}
RATE_DURATION=${RATE_DURATION:-2}
MODES=${MODES:-"saturation fixed"}
mode() { [[ " $MODES " == *" $1 "* ]]; }
RATE_CONNS=${RATE_CONNS:-50}
started=$SECONDS
. benches/load/common.sh
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --example paced_load
PACED=$TARGET/release/examples/paced_load
built=$SECONDS

# Peak resident kB of the processes `pids…`, summed.
peak_kb() {
    local total=0 p
    for p in "$@"; do
        [ -r "/proc/$p/status" ] && total=$((total + $(awk '/VmHWM/ {print $2}' "/proc/$p/status")))
    done
    echo "$total"
}
to_ms() { # wrk latency like 1.23ms / 456.00us / 1.02s
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
TCK=$(getconf CLK_TCK)
results="$work/results"
: > "$results"

run_one() { # system threads round url pids...
    local sys=$1 t=$2 r=$3 url=$4
    shift 4
    local before after out
    # One second unmeasured first (after Caddy's run, the first requests
    # through any pingora proxy took 0.3–1 s; docs/benchmarks.md).
    wrk -t1 -c"$CONNS" -d1s -H "X-API-Key: bench-key" "$url" >/dev/null
    before=$(cpu_ticks "$@")
    local perf_pid=""
    if [ -n "${PERF_DIR:-}" ] && [ "$r" = 1 ] && [ "$#" -gt 0 ]; then
        # A CPU profile of the proxy under the same load (first round only).
        mkdir -p "$PERF_DIR"
        perf record -q -F 1999 -g -o "$PERF_DIR/$sys-$t.data" -p "$(IFS=,; echo "$*")" -- sleep "$DURATION" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "X-API-Key: bench-key" "$url")
    # RAW_DIR=dir keeps every wrk report (dir/system-threads-round.txt).
    if [ -n "${RAW_DIR:-}" ]; then mkdir -p "$RAW_DIR" && printf '%s\n' "$out" > "$RAW_DIR/$sys-$t-$r.txt"; fi
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        perf report -i "$PERF_DIR/$sys-$t.data" --no-children --percent-limit 0.7 --stdio -g none 2>/dev/null \
            | grep -v '^$' > "$PERF_DIR/$sys-$t.txt" || true
    fi
    after=$(cpu_ticks "$@")
    local rps p50 p99 reqs cpu100k peak
    rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<< "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<< "$out")")
    reqs=$(awk '/requests in/ {print $1}' <<< "$out")
    local non2xx
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
    if [ "$#" -gt 0 ]; then
        cpu100k=$(awk -v d=$((after - before)) -v n="$reqs" -v tck="$TCK" 'BEGIN { printf "%.3f", d / tck / n * 100000 }')
        peak=$(awk -v k="$(peak_kb "$@")" 'BEGIN { printf "%.1f", k / 1024 }')
    else
        cpu100k="-" peak="-"
    fi
    echo "$t $r $sys $rps $p50 $p99 $cpu100k $peak ${non2xx:-0}" >> "$results"
    printf '  threads=%s round=%s %-14s %10s req/s  p50 %7s ms  p99 %7s ms  cpu/100k %6s s  peak %6s MiB  non-2xx %s\n' \
        "$t" "$r" "$sys" "$rps" "$p50" "$p99" "$cpu100k" "$peak" "${non2xx:-0}"
}

paced="$work/paced"
: > "$paced"
paced_one() { # system threads round url
    local out how=(--header "X-API-Key: bench-key")
    # direct is the HTTPS upstream itself.
    [ "$1" = direct ] && how=(--ca "$work/ca.pem")
    [ -n "${TIMES_DIR:-}" ] && mkdir -p "$TIMES_DIR" && how+=(--times "$TIMES_DIR/$1-t$2-r$3.txt")
    out=$("$PACED" --url "$4" "${how[@]}" --rate "$RATE" --duration "$RATE_DURATION" --warmup 0.5 --connections "$RATE_CONNS")
    # sent N ok N errors N rate N p50_us N p99_us N p999_us N max_us N
    set -- "$1" "$2" "$3" $out
    echo "$2 $3 $1 ${13} ${15} ${17} ${19} ${9}" >> "$paced"
    printf '  threads=%s round=%s %-14s at %5s req/s  p50 %6s us  p99 %6s us  p99.9 %6s us  max %7s us  errors %s\n' \
        "$2" "$3" "$1" "${11}" "${13}" "${15}" "${17}" "${19}" "${9}"
}

for t in $THREADS; do
    echo "== $t thread(s) per proxy, $CONNS connections, ${DURATION}s per run, $ROUNDS rounds"
    nginx_conf "proxy$t" "$t" "upstream oic { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 10000000; }
        server { listen 127.0.0.1:$NGX; keepalive_requests 10000000; location / {
            proxy_pass https://oic; proxy_http_version 1.1; proxy_set_header Connection \"\";
            proxy_set_header Host localhost; proxy_set_header Authorization \"Bearer $BENCH_TOKEN\";
            proxy_ssl_server_name on; proxy_ssl_name localhost; proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $work/ca.pem; proxy_ssl_session_reuse on; } }"
    wait_port "$NGX"
    ngx_pids=("$(cat "$work/proxy$t.pid")" $(pgrep -P "$(cat "$work/proxy$t.pid")"))

    "$FLOOR" --listen "127.0.0.1:$FLR" --upstream "127.0.0.1:$UP" --sni localhost --ca "$work/ca.pem" --authorization-file "$work/authorization" --threads "$t" >/dev/null 2>&1 &
    floor_pid=$!
    pids+=("$floor_pid")
    wait_port "$FLR"

    # HAProxy: the thread setting as nbthread, the same token, HTTPS
    # upstream verified with keep-alive (http-reuse always).
    cat > "$work/haproxy$t.cfg" <<EOF
global
    nbthread $t
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$HAP
    http-request set-header Host localhost
    http-request set-header Authorization "Bearer $BENCH_TOKEN"
    default_backend oic
backend oic
    http-reuse always
    server up 127.0.0.1:$UP ssl verify required verifyhost localhost ca-file $work/ca.pem sni str(localhost)
EOF
    haproxy -f "$work/haproxy$t.cfg" >/dev/null 2>&1 &
    hap_pid=$!
    pids+=("$hap_pid")
    wait_port "$HAP"

    # Caddy (Go): GOMAXPROCS as the thread setting, the same token.
    cat > "$work/Caddyfile$t" <<EOF
{
    admin off
    auto_https off
    log {
        output discard
    }
}
http://127.0.0.1:$CDY {
    reverse_proxy https://127.0.0.1:$UP {
        header_up Host localhost
        header_up Authorization "Bearer $BENCH_TOKEN"
        transport http {
            tls_server_name localhost
            tls_trusted_ca_certs $work/ca.pem
        }
    }
}
EOF
    GOMAXPROCS=$t caddy run --config "$work/Caddyfile$t" --adapter caddyfile >"$work/caddy$t.log" 2>&1 &
    cdy_pid=$!
    pids+=("$cdy_pid")
    wait_port "$CDY"

    bp_config "$t" "$work/bp$t.yaml"
    "$BP" --log-level warn run -c "$work/bp$t.yaml" >"$work/bp$t.log" 2>&1 &
    bp_pid=$!
    pids+=("$bp_pid")
    wait_port "$BPX"

    for r in $(seq 1 "$ROUNDS"); do
        mode saturation || break
        # The reference does not depend on the proxies' settings: once each.
        if [ "$r" = 1 ]; then run_one direct "$t" "$r" "https://127.0.0.1:$UP/"; fi
        run_one nginx "$t" "$r" "http://127.0.0.1:$NGX/ic/api/x" "${ngx_pids[@]}"
        run_one pingora-floor "$t" "$r" "http://127.0.0.1:$FLR/ic/api/x" "$floor_pid"
        run_one haproxy "$t" "$r" "http://127.0.0.1:$HAP/ic/api/x" "$hap_pid"
        run_one caddy "$t" "$r" "http://127.0.0.1:$CDY/ic/api/x" "$cdy_pid"
        run_one bearer-proxy "$t" "$r" "http://127.0.0.1:$BPX/ic/api/x" "$bp_pid"
    done
    mode fixed && echo "-- fixed rate: $RATE req/s over $RATE_CONNS connections, ${RATE_DURATION}s per run"
    for r in $(seq 1 "$ROUNDS"); do
        mode fixed || break
        paced_one direct "$t" "$r" "https://localhost:$UP/"
        paced_one nginx "$t" "$r" "http://127.0.0.1:$NGX/ic/api/x"
        paced_one pingora-floor "$t" "$r" "http://127.0.0.1:$FLR/ic/api/x"
        paced_one haproxy "$t" "$r" "http://127.0.0.1:$HAP/ic/api/x"
        paced_one caddy "$t" "$r" "http://127.0.0.1:$CDY/ic/api/x"
        paced_one bearer-proxy "$t" "$r" "http://127.0.0.1:$BPX/ic/api/x"
    done
    kill "$hap_pid" "$cdy_pid" 2>/dev/null || true
    wait "$hap_pid" "$cdy_pid" 2>/dev/null || true
    "$NGINX" -p "$work" -c "$work/proxy$t.conf" -e "$work/error.log" -s stop
    # `-s stop` returns at once; the next setting reuses the port.
    while kill -0 "${ngx_pids[0]}" 2>/dev/null; do sleep 0.05; done
    # SIGINT is pingora's fast shutdown (SIGTERM drains for its grace period).
    kill -INT "$floor_pid" 2>/dev/null || true
    kill -TERM "$bp_pid" 2>/dev/null || true
    wait "$floor_pid" "$bp_pid" 2>/dev/null || true
done

if mode saturation; then
    echo
    echo "== medians over $ROUNDS rounds (peak RSS: the largest seen)"
    printf '%-8s %-14s %12s %9s %9s %12s %10s\n' threads system "req/s" "p50 ms" "p99 ms" "cpu s/100k" "peak MiB"
    for t in $THREADS; do
        for sys in direct nginx haproxy caddy pingora-floor bearer-proxy; do
            awk -v t="$t" -v s="$sys" '$1 == t && $3 == s' "$results" | awk -v t="$t" -v s="$sys" "$AWK_STATS"'
                { n++; rps[n] = $4; p50[n] = $5; p99[n] = $6; cpu[n] = $7; if ($8 != "-" && $8 > peak) peak = $8 }
                END { printf "%-8s %-14s %12.0f %9.3f %9.3f %12s %10s\n", t, s, median(rps, n), median(p50, n), median(p99, n), (cpu[1] == "-" ? "-" : sprintf("%.3f", median(cpu, n))), (peak == "" ? "-" : peak) }'
        done
    done

    echo
    echo "== ratios from paired rounds: median (min..max)"
    for t in $THREADS; do
        for pair in "nginx" "haproxy" "caddy" "pingora-floor"; do
            awk -v t="$t" -v other="$pair" "$AWK_STATS"'
                $1 == t && $3 == "bearer-proxy" { b[$2] = $4; b99[$2] = $6; bc[$2] = $7 }
                $1 == t && $3 == other { o[$2] = $4; o99[$2] = $6; oc[$2] = $7 }
                END { for (r in b) if (r in o) { n++; tp[n] = b[r] / o[r]; lat[n] = b99[r] / o99[r]; cp[n] = bc[r] / oc[r] }
                      printf "threads=%s bearer/%s: throughput %s  p99 %s  cpu/request %s\n", t, other, spread(tp, n), spread(lat, n), spread(cp, n) }' "$results"
        done
    done

fi
if mode fixed; then
    echo
    echo "== fixed rate, $RATE req/s: latency added over direct (same round), median over $ROUNDS rounds, microseconds"
    printf '%-8s %-14s %9s %9s %9s %9s\n' threads system "+p50" "+p99" "+p99.9" errors
    for t in $THREADS; do
        awk -v t="$t" "$AWK_STATS"'$1 == t && $3 == "direct" { n++; a[n] = $4; b[n] = $5; c[n] = $6 }
            END { printf "%-8s %-14s %9s %9s %9s   (direct itself: p50 %d, p99 %d, p99.9 %d)\n", t, "direct", "-", "-", "-", median(a, n), median(b, n), median(c, n) }' "$paced"
        for sys in nginx haproxy caddy pingora-floor bearer-proxy; do
            awk -v t="$t" -v s="$sys" "$AWK_STATS"'
                $1 == t && $3 == "direct" { d50[$2] = $4; d99[$2] = $5; d999[$2] = $6 }
                $1 == t && $3 == s { p50[$2] = $4; p99[$2] = $5; p999[$2] = $6; errors += $8 }
                END { for (r in p50) if (r in d50) { n++; a[n] = p50[r] - d50[r]; b[n] = p99[r] - d99[r]; c[n] = p999[r] - d999[r] }
                      printf "%-8s %-14s %9d %9d %9d %9d\n", t, s, median(a, n), median(b, n), median(c, n), errors }' "$paced"
        done
    done

fi
echo
echo "== took $((SECONDS - started)) s: $((built - started)) s set-up and build, $((SECONDS - built)) s measuring"
