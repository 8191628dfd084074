#!/usr/bin/env bash
# Per-caller tokens (issue #18), on loopback, bounded in time:
#   hitpath  CPU per request of a route whose client acts as each of 1,000
#            API-key callers (user assertions, one token per caller) against
#            the same route and keys with one client_credentials token:
#            interleaved rounds, both orders (B/A and A/B), geometric mean
#   memory   resident memory of the proxy holding 10,000 callers' tokens,
#            against the same proxy holding one caller's
#
# usage: benches/load/callers.sh [hitpath] [memory]
#        (THREADS=1 ROUNDS=5 DURATION=6 CONNS=64 CALLERS=1000 HELD=10000)
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
CONNS=${CONNS:-64}
CALLERS=${CALLERS:-1000}
HELD=${HELD:-10000}
PARTS=${*:-hitpath memory}
. benches/load/common.sh
TCK=$(getconf CLK_TCK)
FIX=$PWD/tests/fixtures
CIDP=$((BASE + 25))

# The callers: API keys key-0 … key-(N-1) named caller0 …, each an
# identity-domain user of the emulator.
N=$(( CALLERS > HELD ? CALLERS : HELD ))
python3 - "$work" "$N" <<'PY'
import hashlib, sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/caller-keys", "w") as keys, open(f"{work}/users", "w") as users:
    for i in range(n):
        keys.write(f"caller{i}:{hashlib.sha256(f'key-{i}'.encode()).hexdigest()}\n")
        users.write(f"caller{i}:pw-{i}\n")
PY
"$BP" emulator --listen "127.0.0.1:$CIDP" --client bench:bench-secret --users "$work/users" \
    --client-certificate "bench:bench-key:$FIX/client-cert.pem" >/dev/null 2>&1 &
pids+=($!)
wait_port "$CIDP"

# One config: single identity (`single`) or one token per caller (`callers`).
config() { # kind port admin-port file
    local client=bench
    cat > "$4" <<YAML
server: { listen: ["127.0.0.1:$2"], threads: $THREADS, token_requests_per_second: 2000, token_requests_per_minute: 100000 }
admin: { listen: "127.0.0.1:$3" }
clients:
  bench:
    token_url: "http://127.0.0.1:$CIDP/oauth2/v1/token"
    client_id: bench
    client_secret: bench-secret
    scopes: ["https://localhost:443urn:opc:resource:consumer::all"]
  bench-as-caller:
    token_url: "http://127.0.0.1:$CIDP/oauth2/v1/token"
    client_id: bench
    client_secret: bench-secret
    grant: jwt_bearer
    on_behalf_of: caller
    max_callers: $((HELD * 2))
    signing_key: { key_file: "$FIX/client-key.pem", kid: bench-key }
    scopes: ["https://localhost:443urn:opc:resource:consumer::all"]
routes:
  - name: oic
    upstream: "https://localhost:$UP"
    upstream_ca_file: ca.pem
    client: $([ "$1" = callers ] && echo bench-as-caller || echo "$client")
    access: { api_keys_file: caller-keys }
YAML
}

# wrk cycling through the first `n` callers' keys, one per request.
cat > "$work/callers.lua" <<'LUA'
local n = tonumber(os.getenv("BENCH_CALLERS"))
local requests, i = {}, 0
init = function()
  for k = 0, n - 1 do
    requests[k] = wrk.format("GET", "/ic/api/x", { ["X-API-Key"] = "key-" .. k })
  end
end
request = function()
  local r = requests[i]
  i = (i + 1) % n
  return r
end
LUA

one() { # pid port → "req/s cpu-seconds-per-100k"
    local t0 t1 out rps n
    t0=$(cpu_ticks "$1")
    out=$(BENCH_CALLERS=$CALLERS wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$work/callers.lua" "http://127.0.0.1:$2/")
    t1=$(cpu_ticks "$1")
    if grep -q Non-2xx <<< "$out"; then echo "non-2xx answers; figures would be wrong" >&2; exit 1; fi
    rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
    n=$(awk '/requests in/ {print $1}' <<< "$out")
    echo "$rps $(awk -v d=$((t1 - t0)) -v n="$n" -v t="$TCK" 'BEGIN { printf "%.3f", d / t / n * 100000 }')"
}

start() { # config log → pid
    "$BP" --log-level warn run -c "$1" > "$2" 2>&1 &
    pids+=($!)
    echo $!
}

if [[ " $PARTS " == *" hitpath "* ]]; then
    config single "$BPX" "$ADM" "$work/single.yaml"
    config callers "$((BPX + 10))" "$((ADM + 10))" "$work/callers.yaml"
    a=$(start "$work/single.yaml" "$work/single.log")
    b=$(start "$work/callers.yaml" "$work/callers.log")
    wait_port "$BPX"; wait_port "$((BPX + 10))"
    echo "== hitpath: single identity (A) against $CALLERS callers' own tokens (B), $THREADS thread(s), wrk -t1 -c$CONNS, ${DURATION}s rounds"
    # Every caller's token fetched before measuring: the hit path only.
    one "$b" "$((BPX + 10))" > /dev/null
    one "$a" "$BPX" > /dev/null
    : > "$work/ab"
    for r in $(seq 1 "$ROUNDS"); do
        # Both orders in every round: A B, then B A.
        read -r ar ac <<< "$(one "$a" "$BPX")"
        read -r br bc <<< "$(one "$b" "$((BPX + 10))")"
        read -r br2 bc2 <<< "$(one "$b" "$((BPX + 10))")"
        read -r ar2 ac2 <<< "$(one "$a" "$BPX")"
        echo "$ar $ac $br $bc $ar2 $ac2 $br2 $bc2" >> "$work/ab"
        printf '  round %s  A %9s req/s %6s s/100k  B %9s req/s %6s s/100k | B %9s %6s  A %9s %6s\n' \
            "$r" "$ar" "$ac" "$br" "$bc" "$br2" "$bc2" "$ar2" "$ac2"
    done
    awk "$AWK_STATS"'
         { n++; t1[n] = $3 / $1; c1[n] = $4 / $2; t2[n] = $7 / $5; c2[n] = $8 / $6 }
         END {
           mt1 = median(t1, n); mc1 = median(c1, n); mt2 = median(t2, n); mc2 = median(c2, n)
           printf "  B/A, A first:  throughput %.3f  CPU per request %.3f\n", mt1, mc1
           printf "  B/A, B first:  throughput %.3f  CPU per request %.3f\n", mt2, mc2
           printf "  geometric mean: throughput %.3f  CPU per request %.3f  (target CPU <= 1.05)\n", sqrt(mt1 * mt2), sqrt(mc1 * mc2)
         }' "$work/ab"
    curl -s "http://127.0.0.1:$((ADM + 10))/metrics" | grep '^bearer_proxy_callers'
    kill -INT "$a" "$b"; wait "$a" "$b" 2>/dev/null || true
fi

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
if [[ " $PARTS " == *" memory "* ]]; then
    echo "== memory: resident memory holding $HELD callers' tokens against one caller's"
    config callers "$BPX" "$ADM" "$work/held.yaml"
    p=$(start "$work/held.yaml" "$work/held.log")
    wait_port "$BPX"
    python3 - "$BPX" "$HELD" "$p" "$ADM" <<'PY'
import http.client, sys, time
port, held, pid, admin = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
conn = http.client.HTTPConnection("127.0.0.1", port)
def get(i):
    conn.request("GET", "/ic/api/x", headers={"X-API-Key": f"key-{i}"})
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
for _ in range(200):   # one caller, warm
    get(0)
time.sleep(1)
base = rss()
start = time.time()
for i in range(held):
    get(i)
took = time.time() - start
for _ in range(200):
    get(0)
time.sleep(1)
after = rss()
a = http.client.HTTPConnection("127.0.0.1", admin)
a.request("GET", "/metrics"); m = a.getresponse().read().decode()
callers = [l for l in m.splitlines() if l.startswith("bearer_proxy_callers{")]
print(f"  one caller: {base} KiB; {held} callers: {after} KiB; {(after - base) / (held - 1):.2f} KiB per cached caller")
print(f"  {held} first requests (one token request each) in {took:.1f} s; {callers[0] if callers else 'no gauge'}")
PY
    kill -INT "$p"; wait "$p" 2>/dev/null || true
fi
