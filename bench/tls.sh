#!/usr/bin/env bash
# latchkey over TLS: POST /v1/verify over HTTPS (HTTP/1.1 keep-alive, wrk) and
# over HTTP/2 (h2load), each compared with nginx answering a fixed 60-byte body
# over the same TLS (same certificate, TLS 1.2+, http2 on), on loopback.
# Run as `bash bench/tls.sh` (`make bench` runs it after bench/run.sh).
# Knobs: BENCH_SECONDS (10), BENCH_WARMUP (2), BENCH_THREADS (1), BENCH_CONNS (32),
# BENCH_STREAMS (HTTP/2 streams per connection, 10), BENCH_KEYS (10000).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STREAMS=${BENCH_STREAMS:-10}
NGINX=${NGINX:-nginx}
H2LOAD=${H2LOAD:-h2load}

NGINX_BODY='{"status":"ok","service":"nginx-baseline","pad":"xxxxxxxxx"}' # 60 bytes

BENCH_NAME=bench-tls
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

bench_options 10000
need_uints STREAMS:BENCH_STREAMS
(( STREAMS >= 1 )) || die "BENCH_STREAMS must be at least 1"
(( ${#NGINX_BODY} == 60 )) || die "internal: nginx body is ${#NGINX_BODY} bytes"
for t in "$WRK" "$NGINX" "$H2LOAD" curl openssl; do
    command -v "$t" >/dev/null 2>&1 ||
        die "'$t' not found (Debian: apt-get install wrk nginx-light nghttp2-client curl openssl; or scripts/deps.sh bench)"
done
[[ -x $LATCHKEY ]] || die "latchkey binary '$LATCHKEY' not found; run 'make' first"

D=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench-tls.XXXXXX")
LK_PID= NGINX_PID= LOAD_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if (( rc != 0 )); then
        for f in latchkey.log nginx-error.log; do
            [[ -s $D/$f ]] && { note "last lines of $f:"; tail -n 20 "$D/$f" | sed 's/^/    /' >&2; }
        done
    fi
    stop_pid "$LOAD_PID"; stop_pid "$LK_PID"; stop_pid "$NGINX_PID"
    rm -rf -- "$D"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_https() {
    local url=$1 pid=$2 i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$url: the server exited"
        [[ $(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/cert.pem" --max-time 2 "$url" || true) == 200 ]] &&
            return 0
        sleep 0.1
    done
    die "$url did not answer 200 within 60 s"
}
# bg OUT CMD...: runs a load generator in the background (traps stay live).
bg() {
    local out=$1 rc=0
    shift
    "$@" >"$out" 2>&1 &
    LOAD_PID=$!
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    return "$rc"
}
# wrk_run NAME URL [wrk args]: "rps errors p99" in $D/res-NAME.
wrk_run() {
    local name=$1 url=$2
    shift 2
    (( WARMUP > 0 )) && bg "$D/warm-$name" "$WRK" -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$@" "$url"
    note "$name: wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s (HTTPS, HTTP/1.1 keep-alive)"
    bg "$D/out-$name" "$WRK" -t"$THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" --latency "$@" "$url" ||
        { cat "$D/out-$name" >&2; die "wrk failed for $name"; }
    sed 's/^/    /' "$D/out-$name"
    awk '/^Requests\/sec:/ { r = $2 } /Non-2xx/ { e += $NF }
         /Socket errors:/ { for (i = 3; i <= NF; i += 2) { x = $(i + 1); sub(/,/, "", x); e += x } }
         $1 == "99%" && p == "" { p = $2 }
         END { if (r == "") exit 1; printf "%s %d %s\n", r, e, p }' "$D/out-$name" >"$D/res-$name" ||
        die "cannot parse wrk output for $name"
}
# h2_run NAME URL [h2load args]: the same over HTTP/2 with h2load.
h2_run() {
    local name=$1 url=$2
    shift 2
    local args=(-t"$THREADS" -c"$CONNS" -m"$STREAMS" "$@")
    (( WARMUP > 0 )) && bg "$D/warm-$name" "$H2LOAD" "${args[@]}" -D "$WARMUP" "$url"
    note "$name: h2load -t$THREADS -c$CONNS -m$STREAMS -D $SECONDS_RUN (HTTP/2 over TLS)"
    bg "$D/out-$name" "$H2LOAD" "${args[@]}" -D "$SECONDS_RUN" "$url" ||
        { cat "$D/out-$name" >&2; die "h2load failed for $name"; }
    grep -E '^(finished|requests|status codes|TLS Protocol|Application protocol)' "$D/out-$name" | sed 's/^/    /'
    grep -q '^Application protocol: h2' "$D/out-$name" || die "$name did not negotiate h2"
    awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^req\/s/) r = $i }
         /^requests:/ { for (i = 1; i <= NF; i++) { if ($(i + 1) ~ /^failed/) e += $i; if ($(i + 1) ~ /^errored/) e += $i } }
         /^status codes:/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^[345]xx/) e += $i }
         END { if (r == "") exit 1; printf "%s %d -\n", r, e }' "$D/out-$name" >"$D/res-$name" ||
        die "cannot parse h2load output for $name"
}

# --- certificate, latchkey, nginx -------------------------------------------

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$D/key.pem" -out "$D/cert.pem" >/dev/null 2>&1 ||
    die "openssl could not make a certificate"
DB="sqlite:$D/bench.db"
"$LATCHKEY" init --db "$DB" --json >"$D/init.json" 2>"$D/init.log" || die "latchkey init failed"
"$LATCHKEY" seed --db "$DB" --count "$KEYS" --out "$D/secrets.txt" >"$D/seed.log" 2>&1 ||
    die "latchkey seed failed"
SECRET=$(shuf -n 1 "$D/secrets.txt" | tr -d '\r\n')
[[ $SECRET =~ ^[A-Za-z0-9_.-]+$ ]] || die "unexpected characters in a seeded secret"
printf '{"key":"%s"}' "$SECRET" >"$D/verify.json"
cat >"$D/verify.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"key":"$SECRET"}'
wrk.headers["Content-Type"] = "application/json"
EOF

LK_PORT=$(free_port)
"$LATCHKEY" serve --listen "127.0.0.1:$LK_PORT" --db "$DB" --tls-cert "$D/cert.pem" --no-access-log \
    --tls-key "$D/key.pem" >"$D/latchkey.log" 2>&1 &
LK_PID=$!
LK=https://127.0.0.1:$LK_PORT
wait_https "$LK/healthz" "$LK_PID"
out=$(curl -s --http2 --cacert "$D/cert.pem" -w ' %{http_version}' -H 'Content-Type: application/json' \
    --data-binary "@$D/verify.json" "$LK/v1/verify")
[[ $out == *'"valid":true'*' 2' ]] || die "sanity: verify over HTTP/2 answered: ${out:0:300}"

NG_PORT=$(free_port)
mkdir -p "$D/nginx/tmp"
# `listen ... ssl http2` works on nginx 1.22 (Debian 12) and, with a warning, later.
cat >"$D/nginx/nginx.conf" <<EOF
$(nginx_preamble "$D/nginx" "$(nproc)" "$D/nginx-error.log")
http {
$(nginx_http_common "$D/nginx/tmp")
    server {
        listen 127.0.0.1:$NG_PORT ssl http2;
        ssl_certificate $D/cert.pem;
        ssl_certificate_key $D/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            default_type application/json;
            return 200 '$NGINX_BODY';
        }
    }
}
EOF
"$NGINX" -t -p "$D/nginx" -e "$D/nginx-error.log" -c "$D/nginx/nginx.conf" >"$D/nginx-t.log" 2>&1 ||
    { cat "$D/nginx-t.log" >&2; die "the generated nginx config does not pass nginx -t"; }
"$NGINX" -p "$D/nginx" -e "$D/nginx-error.log" -c "$D/nginx/nginx.conf" >/dev/null 2>&1 &
NGINX_PID=$!
NG=https://127.0.0.1:$NG_PORT
wait_https "$NG/" "$NGINX_PID"

# --- runs: nginx right before the latchkey run it is compared with --------------

# nginx answers GET, as in bench/run.sh; over HTTP/2 it also gets the very POST
# latchkey gets (nginx reads and drops the body), a slower baseline.
POST_H2=(-d "$D/verify.json" -H 'content-type: application/json')
wrk_run nginx-h1 "$NG/"
wrk_run latchkey-h1 "$LK/v1/verify" -s "$D/verify.lua"
h2_run nginx-h2 "$NG/"
h2_run latchkey-h2 "$LK/v1/verify" "${POST_H2[@]}"
h2_run nginx-h2-post "$NG/" "${POST_H2[@]}"
kill -0 "$LK_PID" 2>/dev/null || die "latchkey exited during the runs"

echo
echo "== latchkey over TLS =="
echo "machine:  $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
echo "tools:    $({ "$WRK" -v 2>&1 || true; } | awk 'NR == 1 { print $1, $2 }'), $("$H2LOAD" --version 2>&1 | head -1), $({ "$NGINX" -v 2>&1 || true; } | sed 's/^nginx version: //'), $(openssl version | cut -d' ' -f1-2)"
echo "load:     $THREADS thread(s), $CONNS connections, ${SECONDS_RUN}s after ${WARMUP}s warm-up; HTTP/2 with $STREAMS streams per connection; $KEYS keys"
echo
printf '%-48s %12s %9s %8s %10s\n' target req/s vs.nginx errors p99
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
for pair in "h1:HTTPS HTTP/1.1 keep-alive (wrk)" "h2:HTTP/2 over TLS (h2load)"; do
    p=${pair%%:*}
    read -r ng_rps ng_err ng_p99 <"$D/res-nginx-$p"
    read -r lk_rps lk_err lk_p99 <"$D/res-latchkey-$p"
    printf '%-48s %12.2f %9s %8s %10s\n' "  nginx GET / ($p)" "$ng_rps" "" "$ng_err" "$ng_p99"
    printf '%-48s %12.2f %9s %8s %10s\n' "POST /v1/verify, ${pair#*:}" "$lk_rps" \
        "$(ratio "$lk_rps" "$ng_rps")" "$lk_err" "$lk_p99"
done
read -r np_rps np_err _ <"$D/res-nginx-h2-post"
printf '%-48s %12.2f %9s %8s %10s\n' "  nginx POST / (h2, the same request)" "$np_rps" \
    "" "$np_err" "-"
echo "POST /v1/verify over HTTP/2 vs nginx POST: $(ratio "$lk_rps" "$np_rps")"
echo
echo "each latchkey row is compared with the nginx run just before it; a shared machine's"
echo "figures drift between runs, so read the ratios, not the absolute numbers."
