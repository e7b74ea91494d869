# Helpers shared by bench/run.sh and bench/tls.sh; sourced, not run.
# The sourcing script sets BENCH_NAME (the prefix of its messages) first.

die() { printf '%s: error: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# need_uints VAR:KNOB...: dies naming KNOB (what the user sets) unless $VAR is
# a non-negative integer.
need_uints() {
    local v var
    for v in "$@"; do
        var=${v%%:*}
        is_uint "${!var}" || die "${v#*:} must be a non-negative integer (got '${!var}')"
    done
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
