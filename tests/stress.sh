#!/usr/bin/env bash
# Runs groups of integration tests in parallel processes, round after
# round, to shake out races that one run of the suite rarely meets.
# Each argument is one process's test-name filters (space-separated);
# failing rounds keep their output in $OUT (default /tmp/stress).
#
#   tests/stress.sh 8 "keepalive fast_path differential streaming" \
#                     "streaming limits upstream_401 path_policy"
#   tests/stress.sh 8 "traffic_limits" "traffic_limits streaming keepalive"
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1
shift
OUT=${OUT:-/tmp/stress}
mkdir -p "$OUT"
bin=$(cargo test --test integration --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*integration[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "stress: no integration test binary" >&2; exit 2; }
failed=0
for round in $(seq 1 "$rounds"); do
    pids=()
    i=0
    for group in "$@"; do
        i=$((i + 1))
        # shellcheck disable=SC2086 # a group is several filters
        "$bin" $group >"$OUT/round$round-group$i.log" 2>&1 &
        pids+=("$!")
    done
    i=0
    for pid in "${pids[@]}"; do
        i=$((i + 1))
        if wait "$pid"; then
            rm -f "$OUT/round$round-group$i.log"
        else
            failed=$((failed + 1))
            echo "round $round, group $i failed: $OUT/round$round-group$i.log"
            grep -E '^test .* FAILED$' "$OUT/round$round-group$i.log" || true
        fi
    done
    echo "round $round done"
done
echo "$failed failing group runs in $rounds rounds"
[ "$failed" = 0 ]
