#!/usr/bin/env bash
# The scale targets of the performance issue, on loopback, bounded in time:
#   routes   throughput with 10,000 routes against 1 route (alternating rounds)
#   idle     resident memory of bearer-proxy holding 10,000 idle keep-alive
#            client connections, plain HTTP and TLS (STALLED=1: then as
#            many stalled in the middle of their second request head)
#   renewal  1,000 clients with 60 s tokens: CPU of the renewals and the
#            identity-service requests per second (never above the ceiling)
#   flood    FLOOD (20,000) connection attempts against the default
#            max_connections: peak resident memory, refusals counted by the
#            proxy and seen by the clients, and whether every admitted
#            connection still gets answers (TLS=1: against a TLS
#            listener, with the proxy's CPU time for the whole flood)
#
# usage: benches/load/scale.sh [routes] [idle] [renewal] [flood]
#        (ROUNDS=3 DURATION=10 CONNS=64 IDLE=10000 CLIENTS=1000 CEILING=30 RENEWAL_SECONDS=120 LIFETIME=60s)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
IDLE=${IDLE:-10000}
FLOOD=${FLOOD:-20000}
CLIENTS=${CLIENTS:-1000}
CEILING=${CEILING:-30}
RENEWAL_SECONDS=${RENEWAL_SECONDS:-120}
# LIFETIME=1h gives the same proxy without renewals: its fixed idle cost.
LIFETIME=${LIFETIME:-60s}
PARTS=${*:-routes idle renewal}
. benches/load/common.sh
cargo build --release --quiet --example idle_clients
IDLE_CLIENTS=$TARGET/release/examples/idle_clients
TCK=$(getconf CLK_TCK)
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

start_bp() { # config [seconds to wait] → sets bp_pid, waits for the listener
    if (exec 3<>"/dev/tcp/127.0.0.1/$BPX") 2>/dev/null; then
        echo "something already listens on $BPX (a proxy left over?)" >&2
        exit 1
    fi
    "$BP" --log-level warn run -c "$1" >"$1.log" 2>&1 &
    bp_pid=$!
    pids+=("$bp_pid")
    wait_port "$BPX" "${2:-10}"
}
stop_bp() {
    kill -TERM "$bp_pid" 2>/dev/null || true
    wait "$bp_pid" 2>/dev/null || true
}

if [[ " $PARTS " == *" routes "* ]]; then
    echo "== routes: 1 against 10,000 (wrk -t1 -c$CONNS, ${DURATION}s, $ROUNDS rounds, 1 worker thread)"
    bp_config 1 "$work/one.yaml"
    {
        sed '/^routes:/,$d' "$work/one.yaml"
        echo "routes:"
        # 9,999 other prefixes, then the one the load hits: the table is
        # searched, not walked.
        for i in $(seq 0 9999); do
            printf '  - name: r%d\n    match: { path_prefix: "/svc%d/" }\n    upstream: "https://localhost:%d"\n    upstream_ca_file: ca.pem\n    client: bench\n    access: { api_keys_file: keys }\n' "$i" "$i" "$UP"
        done
    } > "$work/many.yaml"
    for r in $(seq 1 "$ROUNDS"); do
        for setting in one many; do
            start_bp "$work/$setting.yaml"
            path=/ic/api/x
            [ "$setting" = many ] && path=/svc5000/ic/api/x
            out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "X-API-Key: bench-key" "http://127.0.0.1:$BPX$path")
            if grep -q Non-2xx <<< "$out"; then
                echo "non-2xx answers from the $setting-route proxy; figures would be wrong" >&2
                exit 1
            fi
            rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
            echo "$r $setting $rps" >> "$work/routes"
            printf '  round %s  %-5s %10s req/s\n' "$r" "$setting" "$rps"
            stop_bp
        done
    done
    awk "$AWK_STATS"'$2 == "one" { o[$1] = $3 } $2 == "many" { m[$1] = $3 }
         END { for (r in o) { n++; x[n] = m[r] / o[r] }
               printf "  10,000 routes / 1 route throughput: median %s\n", spread(x, n) }' "$work/routes"
    # Start-up and idle cost of the 10,000 routes (upstream names are
    # looked up again every 30 s, so the window holds two rounds).
    started=$(date +%s.%N)
    start_bp "$work/many.yaml" 60
    listening=$(date +%s.%N)
    sleep 2
    t0=$(cpu_ticks "$bp_pid")
    sleep 60
    t1=$(cpu_ticks "$bp_pid")
    stop_bp
    printf '  10,000 routes: listening after %.2f s; idle CPU %.2f %% of one core over 60 s\n' \
        "$(awk -v a="$started" -v b="$listening" 'BEGIN { print b - a }')" \
        "$(awk -v d=$((t1 - t0)) -v tck="$TCK" 'BEGIN { print d / tck / 60 * 100 }')"
fi

# Resident memory of bearer-proxy holding IDLE connections, each after one
# request: idle_run name port [idle_clients options…]
# Starts idle_clients holding `count` connections to `port` (extra
# arguments passed on) until release_clients; returns once they are open.
hold_clients() { # out-file port count [args…]
    local out=$1 port=$2 count=$3
    shift 3
    rm -f "$work/hold"
    mkfifo "$work/hold"
    "$IDLE_CLIENTS" --addr "127.0.0.1:$port" --connections "$count" --header "X-API-Key: bench-key" "$@" \
        < "$work/hold" > "$out" &
    hold_pid=$!
    exec 7>"$work/hold"
    until grep -q ready "$out" 2>/dev/null; do
        kill -0 "$hold_pid" 2>/dev/null || { echo "idle_clients failed" >&2; exit 1; }
        sleep 0.2
    done
}
release_clients() {
    exec 7>&-
    wait "$hold_pid" || true
}

idle_run() {
    local name=$1 port=$2
    shift 2
    # Warm the worker threads and the upstream pool first.
    wrk -t1 -c64 -d2s -H "X-API-Key: bench-key" "http://127.0.0.1:$BPX/ic/api/x" >/dev/null
    local before during held
    before=$(rss_kb "$bp_pid")
    hold_clients "$work/idle.out" "$port" "$IDLE" "$@"
    held=$(awk '/ready/ {print $2}' "$work/idle.out")
    sleep 2
    during=$(rss_kb "$bp_pid")
    release_clients
    printf '  %-12s RSS before %.1f MiB, holding %s idle connections %.1f MiB (%.1f KiB per connection)\n' \
        "$name" "$(awk -v k="$before" 'BEGIN { print k / 1024 }')" "$held" "$(awk -v k="$during" 'BEGIN { print k / 1024 }')" \
        "$(awk -v a="$before" -v b="$during" -v n="$held" 'BEGIN { print (b - a) / n }')"
}

if [[ " $PARTS " == *" idle "* ]]; then
    echo "== idle: $IDLE keep-alive client connections, each after one request (plain HTTP, then TLS)"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    TLS_PORT=$((BPX + 20))
    bp_config 2 "$work/idle.yaml"
    sed -i "s|^server: { \(.*\) }$|server: { \1, max_connections: $((IDLE + 16)), tls_listen: [{ address: \"127.0.0.1:$TLS_PORT\", cert_file: up.pem, key_file: up.key }] }|" "$work/idle.yaml"
    modes="plain tls"
    [ -z "${STALLED:-}" ] || modes="$modes plain-stalled tls-stalled"
    for mode in $modes; do
        start_bp "$work/idle.yaml"
        wait_port "$TLS_PORT"
        stall=()
        [[ $mode != *-stalled ]] || stall=(--stall)
        case $mode in
        plain*) idle_run "$mode" "$BPX" "${stall[@]}" ;;
        tls*) idle_run "$mode" "$TLS_PORT" --ca "$work/ca.pem" "${stall[@]}" ;;
        esac
        stop_bp
    done
fi

if [[ " $PARTS " == *" renewal "* ]]; then
    echo "== renewal: $CLIENTS clients, $LIFETIME tokens, ceiling $CEILING/s, ${RENEWAL_SECONDS}s measured after warm-up"
    kill -INT "${pids[0]}" 2>/dev/null || true # the emulator from common.sh issues 1 h tokens
    wait "${pids[0]}" 2>/dev/null || true
    sleep 0.2
    args=()
    for i in $(seq 1 "$CLIENTS"); do args+=(--client "c$i:s$i"); done
    "$BP" emulator --listen "127.0.0.1:$IDP" --token-lifetime "$LIFETIME" "${args[@]}" >/dev/null 2>&1 &
    pids+=($!)
    wait_port "$IDP"
    {
        printf 'server: { listen: ["127.0.0.1:%s"], threads: 1, token_requests_per_second: %s, startup_token_wait: 120s }\n' "$BPX" "$CEILING"
        printf 'admin: { listen: "127.0.0.1:%s" }\nclients:\n' "$ADM"
        for i in $(seq 1 "$CLIENTS"); do
            printf '  c%d:\n    token_url: "http://127.0.0.1:%s/oauth2/v1/token"\n    client_id: c%d\n    client_secret: s%d\n    scopes: ["https://localhost:443urn:opc:resource:consumer::all"]\n' "$i" "$IDP" "$i" "$i"
        done
        echo "routes:"
        for i in $(seq 1 "$CLIENTS"); do
            printf '  - name: r%d\n    match: { path_prefix: "/c%d/" }\n    upstream: "https://localhost:%s"\n    upstream_ca_file: ca.pem\n    client: c%d\n    access: { api_keys_file: keys }\n' "$i" "$i" "$UP" "$i"
        done
    } > "$work/renewal.yaml"
    # The listener opens once every first token is had (or after 120 s).
    start_bp "$work/renewal.yaml" 150
    fetches() { # all token requests the proxy has sent so far
        exec 8<>"/dev/tcp/127.0.0.1/$ADM"
        printf 'GET /metrics HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n' >&8
        awk '/^bearer_proxy_token_fetch_total/ { s += $NF } END { printf "%d", s }' <&8
        exec 8<&-
    }
    # CPU over a window with nothing else touching the proxy.
    start=$(fetches)
    t0=$(cpu_ticks "$bp_pid")
    sleep "$RENEWAL_SECONDS"
    t1=$(cpu_ticks "$bp_pid")
    end=$(fetches)
    printf '  first tokens: %s requests; then %s renewals in %ss (%.1f/s)\n' \
        "$start" "$((end - start))" "$RENEWAL_SECONDS" "$(awk -v n=$((end - start)) -v s="$RENEWAL_SECONDS" 'BEGIN { print n / s }')"
    printf '  proxy CPU during renewals: %.2f %% of one core\n' \
        "$(awk -v d=$((t1 - t0)) -v tck="$TCK" -v s="$RENEWAL_SECONDS" 'BEGIN { print d / tck / s * 100 }')"
    # Then the request rate, polled (polling /metrics costs CPU itself):
    # requests between polls over the time between them.
    prev=$(fetches) prev_t=$(date +%s.%N) max=0
    for _ in $(seq 1 30); do
        sleep 1
        now=$(fetches) now_t=$(date +%s.%N)
        max=$(awk -v m="$max" -v n=$((now - prev)) -v a="$prev_t" -v b="$now_t" 'BEGIN { r = n / (b - a); print (r > m ? r : m) }')
        prev=$now prev_t=$now_t
    done
    printf '  identity-service requests: highest rate between 1-second polls %.1f/s (ceiling %s/s)\n' "$max" "$CEILING"
    ready=$(exec 8<>"/dev/tcp/127.0.0.1/$ADM"; printf 'GET /readyz HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n' >&8; cat <&8)
    printf '  /readyz at the end: %s; clients without a usable token: %s\n' "$(head -1 <<< "$ready" | tr -d '\r')" "$(grep -o '"c[0-9]*"' <<< "$ready" | wc -l)"
    echo "  warnings logged: $(grep -c WARN "$work/renewal.yaml.log" || true)"
    grep WARN "$work/renewal.yaml.log" | head -3 | cut -c1-240 || true
    stop_bp
fi

if [[ " $PARTS " == *" flood "* ]]; then
    kind="plain HTTP"; [ -z "${TLS:-}" ] || kind="TLS"
    echo "== flood: $FLOOD connection attempts against the default max_connections ($kind)"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    bp_config 2 "$work/flood.yaml"
    port=$BPX tls_args=()
    if [ -n "${TLS:-}" ]; then
        port=$((BPX + 20)) tls_args=(--ca "$work/ca.pem")
        sed -i "s|^server: { \(.*\) }$|server: { \1, tls_listen: [{ address: \"127.0.0.1:$port\", cert_file: up.pem, key_file: up.key }] }|" "$work/flood.yaml"
    fi
    start_bp "$work/flood.yaml"
    wait_port "$port"
    wrk -t1 -c64 -d2s -H "X-API-Key: bench-key" "http://127.0.0.1:$BPX/ic/api/x" >/dev/null
    t0=$(cpu_ticks "$bp_pid")
    hold_clients "$work/flood.out" "$port" "$FLOOD" --flood "${tls_args[@]}"
    t1=$(cpu_ticks "$bp_pid")
    printf '  proxy CPU for the flood: %.2f s\n' "$(awk -v d=$((t1 - t0)) -v t="$TCK" 'BEGIN { print d / t }')"
    release_clients
    refused_metric=$(curl -s "http://127.0.0.1:$ADM/metrics" | awk '/^bearer_proxy_connections_refused_total/ {s += $2} END {print s + 0}')
    peak=$(awk '/VmHWM/ {print $2}' "/proc/$bp_pid/status")
    read -r _ held _ refused < <(grep ready "$work/flood.out")
    answered=$(awk '/answered/ {print $2}' "$work/flood.out")
    printf '  held %s, refused %s (proxy counted %s), admitted ones answered again: %s of %s; peak RSS %.1f MiB\n' \
        "$held" "$refused" "$refused_metric" "$answered" "$held" "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')"
    stop_bp
fi
