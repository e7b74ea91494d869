# shellcheck shell=bash
# Helpers shared by bench/run.sh, bench/tls.sh and bench/cluster.sh; sourced, not run.
# The sourcing script sets BENCH_NAME (the prefix of its messages) first.

die() { printf '%s: error: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# need_uints VAR:KNOB...: dies naming KNOB (what the user sets) unless $VAR is
# a non-negative integer of at most 9 digits; sets it to its decimal value, so a
# leading 0 does not make later arithmetic read it as octal.
need_uints() {
    local v var
    for v in "$@"; do
        var=${v%%:*}
        [[ ${!var} =~ ^[0-9]{1,9}$ ]] || die "${v#*:} must be a non-negative integer below 10^9 (got '${!var}')"
        printf -v "$var" '%d' "$((10#${!var}))"
    done
}

# bench_options [KEYS]: the knobs the bench scripts share (bench/README.md lists
# them), from the environment with their defaults (KEYS keys, 100000 unless
# given), checked; dies naming the knob.
bench_options() {
    LATCHKEY=${LATCHKEY:-$ROOT/build/latchkey}
    KEYS=${BENCH_KEYS:-${1:-100000}}
    SECONDS_RUN=${BENCH_SECONDS:-10}
    WARMUP=${BENCH_WARMUP:-2}
    THREADS=${BENCH_THREADS:-1}
    CONNS=${BENCH_CONNS:-32}
    START_TIMEOUT=${BENCH_START_TIMEOUT:-60}
    WRK=${WRK:-wrk}
    need_uints KEYS:BENCH_KEYS SECONDS_RUN:BENCH_SECONDS WARMUP:BENCH_WARMUP \
        THREADS:BENCH_THREADS CONNS:BENCH_CONNS START_TIMEOUT:BENCH_START_TIMEOUT
    (( THREADS >= 1 && CONNS >= THREADS )) || die "need 1 <= BENCH_THREADS <= BENCH_CONNS"
    (( SECONDS_RUN >= 1 )) || die "BENCH_SECONDS must be at least 1"
    (( KEYS >= 1 )) || die "BENCH_KEYS must be at least 1"
}

# stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "pid $pid did not stop on SIGTERM within 5 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# A TCP port on 127.0.0.1 that nothing is listening on.
free_port() {
    local p i
    # The kernel's pick when python3 is there: a connect probe misses ports that
    # are bound but not listening.
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' &&
            return 0
    fi
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { printf '%s\n' "$p"; return 0; }
    done
    die "no free loopback port"
}

# --- for the scripts that run wrk ---------------------------------------------
# They use the caller's D (scratch dir), WRK, WARMUP, THREADS, CONNS, SECONDS_RUN,
# START_TIMEOUT and WRK_PID (the running wrk, for the caller's cleanup).


# wait_http URL PID NAME: wait until URL answers 200, PID stays alive.
wait_http() {
    local url=$1 pid=$2 name=$3 deadline code
    deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        kill -0 "$pid" 2>/dev/null || die "$name exited before answering $url"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == 200 ]] && return 0
        (( SECONDS < deadline )) || die "$name did not answer 200 on $url within ${START_TIMEOUT}s (last: ${code:-none})"
        sleep 0.1
    done
}

rss_kib() {
    awk '/^VmRSS:/ { print $2; found = 1 } END { if (!found) print "?" }' "/proc/$1/status" 2>/dev/null || echo "?"
}

fmt_mib() {
    [[ $1 =~ ^[0-9]+$ ]] || { printf '?'; return; }
    awk -v k="$1" 'BEGIN { printf "%.1f MiB (%d KiB)", k / 1024, k }'
}

now_ms() { date +%s%3N; }

# parse_wrk FILE: prints "rps p50_us p99_us non2xx socket_errors" for one
# wrk --latency report. Fails if a required line is missing.
parse_wrk() {
    awk '
        function us(v,    n, u) {
            n = v + 0
            u = v
            sub(/^[0-9.]+/, "", u)
            if (u == "us") return n
            if (u == "ms") return n * 1000
            if (u == "s")  return n * 1000000
            if (u == "m")  return n * 60000000
            if (u == "h")  return n * 3600000000
            return -1
        }
        /^Requests\/sec:/            { rps = $2 }
        $1 == "50%" && p50 == ""     { p50 = us($2) }
        $1 == "99%" && p99 == ""     { p99 = us($2) }
        /Non-2xx or 3xx responses:/  { non2xx = $NF }
        /Socket errors:/ {
            # Socket errors: connect 0, read 0, write 0, timeout 0
            for (i = 3; i <= NF; i += 2) { x = $(i + 1); sub(/,/, "", x); sockerr += x }
        }
        END {
            if (rps == "" || p50 == "" || p99 == "" || p50 < 0 || p99 < 0) exit 1
            printf "%s %s %s %d %d\n", rps, p50, p99, non2xx + 0, sockerr + 0
        }
    ' "$1"
}

# fmt_lat MICROSECONDS
fmt_lat() {
    awk -v u="$1" 'BEGIN {
        if (u >= 1000000)  printf "%.2f s", u / 1000000
        else if (u >= 1000) printf "%.2f ms", u / 1000
        else               printf "%.0f us", u
    }'
}

# wrk_bg OUT ARGS...: run wrk in the background and wait for it. wrk handles
# SIGINT itself and exits 0, so as a foreground child a Ctrl-C would not stop
# this script; waiting on a background job lets our traps run at once.
wrk_bg() {
    local out=$1 rc=0
    shift
    "$WRK" "$@" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=
    return "$rc"
}

# wrk_warmup NAME URL [wrk args...]: a WARMUP-second wrk run nothing is read
# from (none when WARMUP is 0).
wrk_warmup() {
    local name=$1 url=$2
    shift 2
    (( WARMUP > 0 )) || return 0
    note "$name: warm-up ${WARMUP}s"
    wrk_bg "$D/wrk-$name-warmup.txt" -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$@" "$url" ||
        { cat "$D/wrk-$name-warmup.txt" >&2; die "wrk warm-up for $name failed"; }
}

# wrk_measure NAME URL SECS [wrk args...]: one measured wrk run of SECS seconds;
# raw output in $D/wrk-NAME.txt, its parse_wrk line in $D/res-NAME.txt.
wrk_measure() {
    local name=$1 url=$2 secs=$3
    shift 3
    wrk_bg "$D/wrk-$name.txt" -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency "$@" "$url" ||
        { cat "$D/wrk-$name.txt" >&2; die "wrk for $name failed"; }
    parse_wrk "$D/wrk-$name.txt" >"$D/res-$name.txt" ||
        { cat "$D/wrk-$name.txt" >&2; die "could not parse wrk output for $name (above)"; }
}

# run_wrk NAME URL [wrk args...]: warm-up, then the measured run of SECONDS_RUN;
# raw output goes to $D/wrk-NAME.txt and is echoed indented.
run_wrk() {
    local name=$1 url=$2
    shift 2
    wrk_warmup "$name" "$url" "$@"
    note "$name: measuring ${SECONDS_RUN}s (wrk -t$THREADS -c$CONNS --latency)"
    wrk_measure "$name" "$url" "$SECONDS_RUN" "$@"
    sed 's/^/    /' "$D/wrk-$name.txt"
}

# med_min_max [FILE]: "median min max" of the numbers in FILE (or stdin), one a
# line (the median of an even count is the mean of the middle two). Fails when
# there are none.
med_min_max() {
    sort -g "$@" | awk '
        { v[++n] = $1 }
        END {
            if (n == 0) exit 1
            m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "%.4f %.4f %.4f\n", m, v[1], v[n]
        }'
}

# cpu_sample: "total idle steal" clock ticks of all CPUs so far, from /proc/stat's
# cpu line (user through steal; guest time is inside user already); "0 0 0"
# where there is none.
cpu_sample() {
    awk '$1 == "cpu" { for (i = 2; i <= 9; i++) t += $i; print t, $5, $9; f = 1; exit }
        END { if (!f) print 0, 0, 0 }' /proc/stat 2>/dev/null || echo 0 0 0
}

# text_pad WIDTH TEXT: TEXT right-aligned in WIDTH characters. printf pads to
# bytes, and the tables hold multi-byte characters (½, –); this counts every
# byte but UTF-8 continuation bytes.
text_pad() {
    local w=$1 s=$2 n
    n=$(printf '%s' "$s" | LC_ALL=C tr -d '\200-\277' | wc -c)
    (( n < w )) && printf '%*s' $((w - n)) ''
    printf '%s' "$s"
}

# nginx_http_common TMPDIR: the lines every benchmark nginx's http block starts
# with: no access log, long keep-alive, every temporary path under TMPDIR (so
# nothing under /etc or /var is touched).
nginx_http_common() {
    local t=$1
    cat <<EOF
    access_log off;
    server_tokens off;
    keepalive_timeout 65s;
    keepalive_requests 100000000;
    client_body_temp_path $t/body;
    proxy_temp_path $t/proxy;
    fastcgi_temp_path $t/fastcgi;
    uwsgi_temp_path $t/uwsgi;
    scgi_temp_path $t/scgi;
EOF
}

# nginx_preamble DIR WORKERS ERRLOG: the main context of a benchmark nginx, its
# pid file in DIR, in the foreground so the script holds its pid.
nginx_preamble() {
    cat <<EOF
daemon off;
master_process on;
worker_processes $2;
pid $1/nginx.pid;
error_log $3 warn;
events { worker_connections 1024; }
EOF
}
