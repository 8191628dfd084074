#!/usr/bin/env bash
# Per-caller tokens (issue #18), on loopback, bounded in time:
#   hitpath  CPU per request of a route whose client acts as each of 1,000
#            callers against a single-identity route: user assertions for
#            API-key callers against the same keys with one
#            client_credentials token, and the callers' own Basic passwords
#            against an address-only route; interleaved rounds, both
#            orders (B/A and A/B), geometric mean
#   memory   resident memory of the proxy holding 10,000 callers' tokens,
#            against the same proxy holding one caller's
#
# usage: benches/load/callers.sh [hitpath | assertion | password] [memory]
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

# One config. kind: `single` (one client_credentials token), `assert` (a
# user assertion per API-key caller), `password` (each caller's own Basic
# credentials); access: the route's access block.
config() { # kind access port admin-port file
    local client=bench
    [ "$1" = assert ] && client=bench-as-caller
    [ "$1" = password ] && client=bench-as-user
    cat > "$5" <<YAML
server: { listen: ["127.0.0.1:$3"], threads: $THREADS, token_requests_per_second: 1000, token_requests_per_minute: 60000 }
admin: { listen: "127.0.0.1:$4" }
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
  bench-as-user:
    token_url: "http://127.0.0.1:$CIDP/oauth2/v1/token"
    client_id: bench
    client_secret: bench-secret
    grant: password
    on_behalf_of: caller
    max_callers: $((HELD * 2))
    password_attempts_per_minute: 60
    scopes: ["https://localhost:443urn:opc:resource:consumer::all"]
routes:
  - name: oic
    upstream: "https://localhost:$UP"
    upstream_ca_file: ca.pem
    client: $client
    access: $2
YAML
}
KEYS='{ api_keys_file: caller-keys }'
BASIC='{ identity_service_basic: true }'
ADDRESS='{ allow_cidrs: ["127.0.0.1/32"] }'

# wrk cycling through the first BENCH_CALLERS callers, one per request:
# their API keys (BENCH_AUTH=key) or Basic credentials (BENCH_AUTH=basic).
cat > "$work/callers.lua" <<'LUA'
local n = tonumber(os.getenv("BENCH_CALLERS"))
local basic = os.getenv("BENCH_AUTH") == "basic"
local requests, i = {}, 0
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  return ((s:gsub(".", function(x)
    local r, byte = "", x:byte()
    for k = 8, 1, -1 do r = r .. (byte % 2 ^ k - byte % 2 ^ (k - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for k = 1, 6 do c = c + (x:sub(k, k) == "1" and 2 ^ (6 - k) or 0) end
    return b64:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end
init = function()
  for k = 0, n - 1 do
    local h
    if basic then
      h = { ["Authorization"] = "Basic " .. base64("caller" .. k .. ":pw-" .. k) }
    else
      h = { ["X-API-Key"] = "key-" .. k }
    end
    requests[k] = wrk.format("GET", "/ic/api/x", h)
  end
end
request = function()
  local r = requests[i]
  i = (i + 1) % n
  return r
end
LUA

one() { # pid port auth → "req/s cpu-seconds-per-100k"
    local t0 t1 out rps n
    t0=$(cpu_ticks "$1")
    out=$(BENCH_CALLERS=$CALLERS BENCH_AUTH=$3 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$work/callers.lua" "http://127.0.0.1:$2/")
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

# Interleaved rounds of A and B, both orders in every round, the
# geometric mean of the two orders' medians.
ab_pair() { # label auth a-kind a-access b-kind b-access
    config "$3" "$4" "$BPX" "$ADM" "$work/a.yaml"
    config "$5" "$6" "$((BPX + 10))" "$((ADM + 10))" "$work/b.yaml"
    local a b
    a=$(start "$work/a.yaml" "$work/a.log")
    b=$(start "$work/b.yaml" "$work/b.log")
    wait_port "$BPX" || { cat "$work/a.log"; exit 1; }
    wait_port "$((BPX + 10))" || { cat "$work/b.log"; exit 1; }
    echo "== $1: A $3, B $5 with $CALLERS callers; $THREADS thread(s), wrk -t1 -c$CONNS, ${DURATION}s rounds"
    # Every caller's token fetched before measuring: the hit path only.
    one "$b" "$((BPX + 10))" "$2" > /dev/null
    one "$a" "$BPX" "$2" > /dev/null
    : > "$work/ab"
    for r in $(seq 1 "$ROUNDS"); do
        read -r ar ac <<< "$(one "$a" "$BPX" "$2")"
        read -r br bc <<< "$(one "$b" "$((BPX + 10))" "$2")"
        read -r br2 bc2 <<< "$(one "$b" "$((BPX + 10))" "$2")"
        read -r ar2 ac2 <<< "$(one "$a" "$BPX" "$2")"
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
    curl -s "http://127.0.0.1:$((ADM + 10))/metrics" | grep '^bearer_proxy_callers' || true
    kill -INT "$a" "$b"; wait "$a" "$b" 2>/dev/null || true
}

if [[ " $PARTS " == *" hitpath "* || " $PARTS " == *" assertion "* ]]; then
    ab_pair "assertion flavour, API keys" key single "$KEYS" assert "$KEYS"
fi
if [[ " $PARTS " == *" hitpath "* || " $PARTS " == *" password "* ]]; then
    ab_pair "password flavour, Basic" basic single "$ADDRESS" password "$BASIC"
fi

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
if [[ " $PARTS " == *" memory "* ]]; then
    echo "== memory: resident memory holding $HELD callers' tokens against one caller's"
    config assert "$KEYS" "$BPX" "$ADM" "$work/held.yaml"
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
