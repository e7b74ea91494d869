#!/usr/bin/env bash
# Start time and resident memory of `latchkey serve` with many keys in SQLite.
# Seeds BENCH_START_KEYS keys (default 1000000) into a scratch database, starts
# serve, and reports the time to the first /healthz 200 and VmRSS then and after
# a few verifications. Target (issue 13): a million keys start in under 2 s and
# stay under 256 MiB resident. See bench/README.md, "In process".
set -euo pipefail

BENCH_NAME=startup
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

KEYS=${BENCH_START_KEYS:-1000000}
RUNS=${BENCH_START_RUNS:-3}
START_TIMEOUT=${BENCH_START_TIMEOUT:-120}
LATCHKEY=${LATCHKEY:-build/latchkey}
need_uints KEYS:BENCH_START_KEYS RUNS:BENCH_START_RUNS START_TIMEOUT:BENCH_START_TIMEOUT
[[ -x $LATCHKEY ]] || die "$LATCHKEY not found: run make first"
command -v curl >/dev/null || die "curl is needed"

D=$(mktemp -d "${TMPDIR:-/tmp}/lk-startup-XXXXXX")
LK_PID=""
cleanup() {
    stop_pid "$LK_PID"
    rm -rf "$D"
}
trap cleanup EXIT INT TERM

DB="sqlite:$D/bench.db"
"$LATCHKEY" init --db "$DB" --json >"$D/init.json" 2>"$D/init.log" || die "latchkey init failed"
note "seed $KEYS keys"
t0=$(now_ms)
"$LATCHKEY" seed --db "$DB" --count "$KEYS" --out "$D/secrets.txt" >"$D/seed.log" 2>&1 ||
    die "latchkey seed failed (see $D/seed.log)"
SEED_MS=$(($(now_ms) - t0))
SECRET=$(head -n 1 "$D/secrets.txt" | tr -d '\r\n')
[[ $SECRET =~ ^[A-Za-z0-9_.-]+$ ]] || die "first secret has unexpected characters"

printf '\n%-6s %10s %14s %14s\n' run "start (s)" "RSS start" "RSS verified"
for ((r = 1; r <= RUNS; r++)); do
    PORT=$(free_port)
    t0=$(now_ms)
    "$LATCHKEY" serve --listen "127.0.0.1:$PORT" --db "$DB" --no-access-log >"$D/serve.log" 2>&1 &
    LK_PID=$!
    wait_http "http://127.0.0.1:$PORT/healthz" "$LK_PID" latchkey
    START_MS=$(($(now_ms) - t0))
    RSS0=$(rss_kib "$LK_PID")
    for ((i = 0; i < 20; i++)); do
        curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
            --data "{\"key\":\"$SECRET\"}" "http://127.0.0.1:$PORT/v1/verify"
    done
    grep -q '"valid":true' <(curl -s -X POST -H 'Content-Type: application/json' \
        --data "{\"key\":\"$SECRET\"}" "http://127.0.0.1:$PORT/v1/verify") ||
        die "a seeded key does not verify"
    RSS1=$(rss_kib "$LK_PID")
    stop_pid "$LK_PID"
    LK_PID=""
    printf '%-6s %10s %10s MiB %10s MiB\n' "$r" \
        "$((START_MS / 1000)).$(printf '%03d' $((START_MS % 1000)))" \
        "$((RSS0 / 1024))" "$((RSS1 / 1024))"
done
printf '\nkeys: %d in SQLite, seeded in %d.%03d s; machine: %s cores, %s\n' "$KEYS" \
    $((SEED_MS / 1000)) $((SEED_MS % 1000)) "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
