# Shared set-up of the load benches (sourced by compare.sh and
# callgrind.sh): tools, release build, a throw-away CA, the HTTPS nginx
# upstream, the identity-service emulator and bearer-proxy's config.
# Expects: cd to the repository, BASE_PORT optional.
BASE=${BASE_PORT:-18400}
UP=$((BASE + 43)) NGX=$((BASE + 1)) FLR=$((BASE + 2)) BPX=$((BASE + 3)) ADM=$((BASE + 4)) IDP=$((BASE + 5))
HAP=$((BASE + 6)) CDY=$((BASE + 7))

need() { command -v "$1" >/dev/null 2>&1; }

# User+system CPU ticks of the processes `pids…`, summed (gone ones count 0).
cpu_ticks() {
    local total=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}

# awk functions for the summaries, prepended to a program:
# median(a, n) sorts a[1..n] and returns its median; spread(a, n) is
# "median (min..max)".
AWK_STATS='
function median(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function spread(a, n,   m) { m = median(a, n); return sprintf("%.3f (%.3f..%.3f)", m, a[1], a[n]) }
'
# The peers and the load generator, and what a release build needs
# (pingora's build wants cmake and a C toolchain) — not the test suite's
# browser and cluster tools, which .ci/install-deps adds.
missing=()
for tool in wrk:wrk nginx:nginx-light openssl:openssl haproxy:haproxy caddy:caddy \
    cmake:cmake cc:build-essential make:make; do
    need "${tool%%:*}" || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# NO_BUILD=1 uses the builds already there (A/B runs of saved binaries
# while the tree is being edited).
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --bin bearer-proxy --example pingora_floor
# Where cargo puts the builds (CARGO_TARGET_DIR is honoured).
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
# BP_BIN=path runs another build of bearer-proxy (an A/B comparison).
BP=${BP_BIN:-$TARGET/release/bearer-proxy}
FLOOR=$TARGET/release/examples/pingora_floor
NGINX=$(command -v nginx)

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for conf in "$work"/*.conf; do
        [ -f "$conf" ] && "$NGINX" -p "$work" -c "$conf" -e "$work/error.log" -s stop 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# A throw-away CA and an upstream certificate for localhost / 127.0.0.1.
(
    cd "$work"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout up.key -out up.csr -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > up.ext
    openssl x509 -req -in up.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out up.pem -days 2 -extfile up.ext 2>/dev/null
)

nginx_conf() { # name workers body
    cat > "$work/$1.conf" <<EOF
worker_processes $2;
pid $work/$1.pid;
events { worker_connections 8192; }
http {
    access_log off;
    $3
}
EOF
    "$NGINX" -p "$work" -c "$work/$1.conf" -e "$work/error.log"
}

wait_port() { # port [seconds, default 10]
    for _ in $(seq 1 $((${2:-10} * 20))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2
    return 1
}

# The upstream: one worker, HTTPS, keep-alive, a small 200.
nginx_conf upstream 1 "server { listen 127.0.0.1:$UP ssl; ssl_certificate $work/up.pem; ssl_certificate_key $work/up.key; keepalive_requests 10000000; location / { return 200 \"ok\n\"; } }"
wait_port "$UP"

# The identity service for bearer-proxy.
"$BP" emulator --listen "127.0.0.1:$IDP" --client bench:bench-secret >/dev/null 2>&1 &
pids+=($!)
wait_port "$IDP"
printf 'bench:%s\n' "$(printf '%s' bench-key | sha256sum | cut -d' ' -f1)" > "$work/keys"

# bearer-proxy's config for `threads` workers: one route, an API-key check.
bp_config() { # threads file
    cat > "$2" <<EOF
server: { listen: ["127.0.0.1:$BPX"], threads: $1 }
admin: { listen: "127.0.0.1:$ADM" }
clients:
  bench:
    token_url: "http://127.0.0.1:$IDP/oauth2/v1/token"
    client_id: bench
    client_secret: bench-secret
    scopes: ["https://localhost:443urn:opc:resource:consumer::all"]
routes:
  - name: oic
    upstream: "https://localhost:$UP"
    upstream_ca_file: ca.pem
    client: bench
    access: { api_keys_file: keys }
EOF
}

# nginx and the floor send a real token from the emulator, so every proxy
# carries the same bytes upstream (a signed JWT is about 1 KB, like
# Oracle's).
bp_config 1 "$work/token.yaml"
BENCH_TOKEN=$("$BP" token -c "$work/token.yaml" --client bench --print 2>/dev/null | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
[ -n "$BENCH_TOKEN" ] || { echo "could not get a token from the emulator" >&2; exit 1; }
printf 'Bearer %s' "$BENCH_TOKEN" > "$work/authorization"
