#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: steady
# where wall-clock figures on a shared VM move by ±10 %. Runs pingora-floor
# and bearer-proxy (one worker thread each, same topology as compare.sh)
# under callgrind; instrumentation is switched on after a warm-up (so the
# upstream TLS handshakes are not counted), wrk drives DURATION seconds of
# load, and the counters are dumped. Prints instructions per request and
# each system's costliest functions (self cost per request).
#
# usage: benches/load/callgrind.sh      (DURATION=10 CONNS=8 TOP=25)
#        KEEP_DIR=/tmp/cg benches/load/callgrind.sh   keeps the profiles for
#        callgrind_annotate (e.g. --inclusive=yes) or kcachegrind
#        BP_EXTRA='telemetry: { otlp_endpoint: "http://127.0.0.1:4318" }' …
#        appends top-level YAML to bearer-proxy's configuration (every
#        thread is counted: the span exporter's too)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-8}
TOP=${TOP:-25}
. benches/load/common.sh
if ! need valgrind; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind >/dev/null
fi
bp_config 1 "$work/bp.yaml"
[ -n "${BP_EXTRA:-}" ] && printf '%s\n' "$BP_EXTRA" >> "$work/bp.yaml"

measure() { # name port command...
    local name=$1 port=$2
    shift 2
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.cg" "$@" >"$work/$name.log" 2>&1 &
    local vg=$!
    pids+=("$vg")
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    wrk -t1 -c"$CONNS" -d3s -H "X-API-Key: bench-key" "http://127.0.0.1:$port/ic/api/x" >/dev/null
    callgrind_control --instr=on "$vg" >/dev/null
    local out reqs
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "X-API-Key: bench-key" "http://127.0.0.1:$port/ic/api/x")
    callgrind_control --instr=off "$vg" >/dev/null
    callgrind_control --dump "$vg" >/dev/null
    kill -INT "$vg" 2>/dev/null || true
    wait "$vg" 2>/dev/null || true
    reqs=$(awk '/requests in/ {print $1}' <<< "$out")
    if grep -q "Non-2xx" <<< "$out"; then
        echo "$name: non-2xx answers, the figures would be wrong" >&2
        return 1
    fi
    local dump
    dump=$(ls "$work/$name.cg"* | grep -v '\.cg$' | tail -1 || true)
    [ -n "$dump" ] || dump="$work/$name.cg"
    local total
    total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen++ { gsub(",", "", $1); print $1 }')
    printf '%-14s %8s requests  %10.0f instructions/request\n' "$name" "$reqs" "$(awk -v t="$total" -v n="$reqs" 'BEGIN { print t / n }')"
    echo "$name $reqs $total" >> "$work/summary"
    callgrind_annotate --threshold=100 "$dump" 2>/dev/null \
        | awk -v n="$reqs" -v top="$TOP" '/^ *[0-9,]+ \([ 0-9.]+%\)/ && shown < top { gsub(",", "", $1); printf "    %8.0f  %s\n", $1 / n, substr($0, index($0, ")") + 2); shown++ }' \
        > "$work/$name.top"
    if [ -n "${KEEP_DIR:-}" ]; then
        mkdir -p "$KEEP_DIR"
        cp "$dump" "$KEEP_DIR/$name.callgrind"
        echo "$reqs" > "$KEEP_DIR/$name.requests"
    fi
}

echo "== instructions per request (callgrind, 1 worker thread, $CONNS connections, ${DURATION}s)"
measure pingora-floor "$FLR" "$FLOOR" --listen "127.0.0.1:$FLR" --upstream "127.0.0.1:$UP" --sni localhost --ca "$work/ca.pem" --authorization-file "$work/authorization" --threads 1
measure bearer-proxy "$BPX" "$BP" --log-level warn run -c "$work/bp.yaml"
awk '{ ipr[$1] = $3 / $2 } END { printf "bearer-proxy / pingora-floor: %.3f\n", ipr["bearer-proxy"] / ipr["pingora-floor"] }' "$work/summary"
for name in pingora-floor bearer-proxy; do
    echo
    echo "== $name: costliest functions, self instructions per request"
    cut -c1-160 "$work/$name.top"
done
