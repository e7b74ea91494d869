#!/usr/bin/env bash
# latchkey on PostgreSQL and Redis against the embedded store, in one run, and
# the revocation propagation delay between two nodes (docs/deploy-cluster.md's
# figures). Starts its own PostgreSQL and Redis on loopback in a scratch dir,
# stops everything on exit. Run as `bash bench/cluster.sh` (the last step of
# `make bench`); bench/README.md "Reading cluster.sh" explains the output.
set -euo pipefail
umask 077 # the scratch dir holds root keys and secrets

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REVOKES=${BENCH_REVOKES:-1000}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
REDIS_SERVER=${REDIS_SERVER:-redis-server}

BENCH_NAME=cluster
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

bench_options
need_uints REVOKES:BENCH_REVOKES
(( REVOKES >= 1 )) || die "BENCH_REVOKES must be at least 1"

# --- tools: every missing piece is named before anything starts ---------------

command -v "$WRK" >/dev/null 2>&1 ||
    die "'$WRK' not found; install it (Debian: apt-get install wrk) or set WRK=/path/to/wrk"
command -v curl >/dev/null 2>&1 || die "'curl' not found; install it (Debian: apt-get install curl)"
for t in initdb pg_ctl psql; do
    [[ -x $PG_BIN/$t ]] || die "$PG_BIN/$t not found; install PostgreSQL (Debian: apt-get install postgresql-15) or set PG_BIN"
done
command -v "$REDIS_SERVER" >/dev/null 2>&1 ||
    die "'$REDIS_SERVER' not found; install it (Debian: apt-get install redis-server) or set REDIS_SERVER"
command -v redis-cli >/dev/null 2>&1 || die "'redis-cli' not found (Debian: apt-get install redis-tools)"
PYTHON=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import requests' 2>/dev/null; then
        PYTHON=$p
        break
    fi
done
[[ -n $PYTHON ]] || die "no python3 with the requests module (Debian: apt-get install python3-requests)"
[[ -x $LATCHKEY ]] || die "latchkey binary '$LATCHKEY' not found or not executable; run 'make' first"
SERVE_HELP=$("$LATCHKEY" serve --help 2>&1 || true)
for f in --redis --state-dir; do
    grep -q -- "$f" <<<"$SERVE_HELP" ||
        die "this latchkey has no 'serve $f': build one with the PostgreSQL and Redis backends"
done

# PostgreSQL refuses to run as root: as root, its files belong to this user.
PG_USER=${BENCH_PG_USER:-nobody}
AS_PG=()
if (( EUID == 0 )); then
    id "$PG_USER" >/dev/null 2>&1 || die "user '$PG_USER' does not exist; set BENCH_PG_USER"
    command -v runuser >/dev/null 2>&1 || die "'runuser' not found (util-linux)"
    AS_PG=(runuser -u "$PG_USER" --)
fi

# --- scratch dir and cleanup -------------------------------------------------

D=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-cluster.XXXXXX")
chmod 0711 "$D" # PostgreSQL's user reaches its own directory below; nothing else is readable
PG_STARTED=
REDIS_PID=
WRK_PID=
NODE_E=""
NODE_A=""
NODE_B=""
SEED_MS_e=0
SEED_MS_pg=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if (( rc != 0 )); then
        for f in pg.log redis.log node-e.log node-a.log node-b.log seed-e.log seed-pg.log \
            init-e.log init-pg.log; do
            if [[ -s $D/$f ]]; then
                note "last lines of $f:"
                tail -n 20 "$D/$f" | sed 's/^/    /' >&2
            fi
        done
    fi
    stop_pid "$WRK_PID"
    stop_pid "$NODE_B"
    stop_pid "$NODE_A"
    stop_pid "$NODE_E"
    stop_pid "$REDIS_PID"
    [[ -z $PG_STARTED ]] ||
        (cd "$D/pg" && timeout 30 "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$D/pg/data" -m fast -t 20 -w stop) \
            >/dev/null 2>&1
    rm -rf -- "$D"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_bounded SECONDS LOG CMD...: CMD with its output in LOG, killed after SECONDS.
run_bounded() {
    local secs=$1 log=$2
    shift 2
    timeout --kill-after=5 "$secs" "$@" >"$log" 2>&1
}

# --- PostgreSQL and Redis on loopback ----------------------------------------

PG_PORT=$(free_port)
mkdir -p "$D/pg"
(( EUID != 0 )) || chown "$PG_USER" "$D/pg"
note "scratch dir $D"
note "PostgreSQL on 127.0.0.1:$PG_PORT"
# (run from its own directory: PostgreSQL's user may not reach this one)
(cd "$D/pg" && run_bounded 120 "$D/pg-initdb.log" "${AS_PG[@]}" "$PG_BIN/initdb" -D "$D/pg/data" \
    -A trust -U postgres -E UTF8 --no-locale) || { cat "$D/pg-initdb.log" >&2; die "initdb failed"; }
: >"$D/pg.log"
(( EUID != 0 )) || chown "$PG_USER" "$D/pg.log"
PG_STARTED=1
(cd "$D/pg" && timeout $((START_TIMEOUT + 10)) "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$D/pg/data" \
    -l "$D/pg.log" -w -t "$START_TIMEOUT" \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$D/pg -c max_connections=200" \
    start >/dev/null) || die "PostgreSQL did not start within ${START_TIMEOUT}s"
run_bounded 30 "$D/pg-create.log" "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -qc "CREATE DATABASE latchkey" ||
    { cat "$D/pg-create.log" >&2; die "cannot create the database"; }
PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/latchkey"

REDIS_PORT=$(free_port)
mkdir -p "$D/redis"
note "Redis on 127.0.0.1:$REDIS_PORT"
# appendonly + fsync always: the durability docs/deploy-cluster.md asks for
"$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$D/redis" --save "" \
    --appendonly yes --appendfsync always --daemonize no --logfile "$D/redis.log" &
REDIS_PID=$!
deadline=$((SECONDS + START_TIMEOUT))
until [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true) == PONG ]]; do
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited at start"
    (( SECONDS < deadline )) || die "Redis did not answer PING within ${START_TIMEOUT}s"
    sleep 0.1
done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# --- the same keys in both stores --------------------------------------------

EMB_URL="sqlite:$D/embedded.db"
# init_seed NAME URL: a workspace and KEYS seeded keys; secrets in $D/secrets-NAME.
init_seed() {
    local name=$1 url=$2 t0
    run_bounded 120 "$D/init-$name.log" "$LATCHKEY" init --db "$url" --json ||
        die "latchkey init on the $name store failed"
    grep -o '"root_key":"[^"]*"' "$D/init-$name.log" | cut -d'"' -f4 >"$D/root-$name"
    [[ -s $D/root-$name ]] || die "latchkey init on the $name store printed no root key"
    note "seed $KEYS keys into the $name store"
    t0=$(now_ms)
    run_bounded 1800 "$D/seed-$name.log" "$LATCHKEY" seed --db "$url" --count "$KEYS" \
        --out "$D/secrets-$name" || die "latchkey seed into the $name store failed"
    printf -v "SEED_MS_$name" '%s' $(($(now_ms) - t0))
}
init_seed e "$EMB_URL"
init_seed pg "$PG_URL"

# start_node VAR NAME PORT ARGS...: latchkey serve in the background, ready.
start_node() {
    local var=$1 name=$2 port=$3 pid
    shift 3
    "$LATCHKEY" serve --listen "127.0.0.1:$port" --no-access-log "$@" >"$D/$name.log" 2>&1 &
    pid=$!
    printf -v "$var" '%s' "$pid"
    wait_http "http://127.0.0.1:$port/healthz" "$pid" "latchkey ($name)"
}

E_PORT=$(free_port)
A_PORT=$(free_port)
B_PORT=$(free_port)
mkdir -p "$D/state-a" "$D/state-b"
note "node e: embedded store on 127.0.0.1:$E_PORT"
start_node NODE_E node-e "$E_PORT" --db "$EMB_URL"
note "node a: PostgreSQL + Redis on 127.0.0.1:$A_PORT"
start_node NODE_A node-a "$A_PORT" --db "$PG_URL" --redis "$REDIS_URL" --state-dir "$D/state-a"

# sanity: a seeded key of each store is valid on its node; a limited key with
# credits, verified with a cost, is the hot path with counters (Redis on a).
limited_key() {
    local name=$1 base=$2 root secret code
    root=$(cat "$D/root-$name")
    curl -s --max-time 10 -o "$D/limited-$name.json" -X POST -H "Authorization: Bearer $root" \
        --data-binary '{"name":"bench-limited","rate_limit":{"limit":1000000000,"window_s":60}}' \
        "$base/v1/keys" || die "could not create the rate-limited key on $name"
    secret=$(grep -o '"secret":"[^"]*"' "$D/limited-$name.json" | cut -d'"' -f4)
    [[ $secret =~ ^[A-Za-z0-9_]+$ ]] || die "creating a key on $name failed: $(head -c 300 "$D/limited-$name.json")"
    code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $root" \
        --data-binary '{"amount":1000000000000000}' "$base/v1/credits" || true)
    [[ $code == 201 ]] || die "topping up credits on $name answered HTTP ${code:-none}"
    printf '%s' "$secret" >"$D/limited-secret-$name"
}
check_valid() {
    local name=$1 base=$2 body=$3 out
    out=$(curl -s --max-time 10 -X POST --data-binary "$body" "$base/v1/verify" || true)
    grep -Eq '"valid"[[:space:]]*:[[:space:]]*true' <<<"$out" ||
        die "sanity check failed on $name: POST /v1/verify answered: ${out:0:300}"
}
for n in e:$E_PORT pg:$A_PORT; do
    name=${n%%:*}
    base=http://127.0.0.1:${n#*:}
    secret=$(shuf -n 1 "$D/secrets-$name" | tr -d '\r\n')
    [[ $secret =~ ^[A-Za-z0-9_.-]+$ ]] || die "a seeded secret of $name has unexpected characters"
    limited_key "$name" "$base"
    cat >"$D/verify-$name.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"key":"$secret"}'
wrk.headers["Content-Type"] = "application/json"
EOF
    cat >"$D/verify-limited-$name.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"key":"$(cat "$D/limited-secret-$name")","cost":1}'
wrk.headers["Content-Type"] = "application/json"
EOF
    check_valid "$name" "$base" "{\"key\":\"$secret\"}"
    check_valid "$name" "$base" "{\"key\":\"$(cat "$D/limited-secret-$name")\",\"cost\":1}"
done
note "sanity checks passed (seeded and limited keys valid on both nodes)"

# --- throughput: the two stores alternately, same load -----------------------

for row in verify verify-limited; do
    run_wrk "$row-e" "http://127.0.0.1:$E_PORT/v1/verify" -s "$D/$row-e.lua"
    kill -0 "$NODE_E" 2>/dev/null || die "the embedded node exited during $row"
    run_wrk "$row-pg" "http://127.0.0.1:$A_PORT/v1/verify" -s "$D/$row-pg.lua"
    kill -0 "$NODE_A" 2>/dev/null || die "the PostgreSQL node exited during $row"
done
stop_pid "$NODE_E"
NODE_E=

# --- revocation propagation: a second node on the same PostgreSQL ------------

note "node b: PostgreSQL + Redis on 127.0.0.1:$B_PORT"
start_node NODE_B node-b "$B_PORT" --db "$PG_URL" --redis "$REDIS_URL" --state-dir "$D/state-b"
note "propagation: $REVOKES revokes on node a, each polled on node b"
# bounded: 30 s to see the keys, then at most 5 s per revoke
timeout --kill-after=5 $((120 + REVOKES * 6)) "$PYTHON" "$ROOT/bench/propagation.py" \
    --a "http://127.0.0.1:$A_PORT" --b "http://127.0.0.1:$B_PORT" \
    --root-key-file "$D/root-pg" --count "$REVOKES" >"$D/propagation.txt" ||
    die "the propagation measure failed (see above)"
PROP=$(cat "$D/propagation.txt")
[[ $PROP == propagation\ n=* ]] || die "propagation.py printed no figures: $PROP"
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$PROP"; }

# --- report ------------------------------------------------------------------

CORES=$(nproc)
CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
PG_VERSION=$("$PG_BIN/postgres" --version 2>/dev/null | awk '{ print $3 }' || true)
REDIS_VERSION=$("$REDIS_SERVER" --version 2>/dev/null | sed -n 's/.*v=\([^ ]*\).*/\1/p' || true)
echo
echo "== latchkey cluster benchmark =="
printf '%-10s %s\n' machine: "$CORES cores, ${CPU_MODEL:-unknown}, Linux $(uname -r)"
printf '%-10s %s\n' engines: "PostgreSQL ${PG_VERSION:-?}, Redis ${REDIS_VERSION:-?} (appendfsync always), loopback, same machine"
printf '%-10s %s\n' load: "wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s --latency (after ${WARMUP}s warm-up), HTTP/1.1 keep-alive"
printf '%-10s %s\n' keys: "$KEYS seeded into each store (embedded in $((SEED_MS_e / 1000)) s, PostgreSQL in $((SEED_MS_pg / 1000)) s)"
echo
printf '%-34s %12s %10s %10s %9s %8s\n' target req/s p50 p99 vs.embedded errors
for row in verify verify-limited; do
    read -r E_RPS _ <"$D/res-$row-e.txt"
    for s in e pg; do
        read -r rps p50 p99 non2xx sockerr <"$D/res-$row-$s.txt"
        label="$( [[ $row == verify ]] && echo "POST /v1/verify" || echo "verify +limit +cost")"
        label+="$( [[ $s == e ]] && echo ", embedded" || echo ", PG + Redis")"
        ratio=$(awk -v a="$rps" -v b="$E_RPS" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        printf '%-34s %12.2f %10s %10s %9s %8s\n' "$label" "$rps" "$(fmt_lat "$p50")" \
            "$(fmt_lat "$p99")" "$ratio" "$((non2xx + sockerr))"
        (( non2xx + sockerr == 0 )) ||
            note "warning: $row-$s had $non2xx non-2xx responses and $sockerr socket errors: not a valid measurement"
    done
done
echo
echo "revocation propagation, node a -> node b, $(val n) revokes:"
echo "  from the revoke sent:     p50 $(val sent_p50_ms) ms, p99 $(val sent_p99_ms) ms, max $(val sent_max_ms) ms"
echo "  from its 204 on node a:   p50 $(val ack_p50_ms) ms, p99 $(val ack_p99_ms) ms"
echo "goal: every other node refuses a revoked key within 100 ms."
