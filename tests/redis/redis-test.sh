#!/usr/bin/env bash
# A Redis of the tests' own: Debian's redis-server (installed with scripts/deps.sh
# test when missing) on 127.0.0.1, under a scratch
# directory, with an append-only file synced at every write (so a restart keeps
# every reservation it acknowledged).
#   tests/redis/redis-test.sh start DIR PORT [PASSWORD]   start (or start again on DIR's data)
#   tests/redis/redis-test.sh stop DIR                    stop it (SIGTERM, then wait)
#   tests/redis/redis-test.sh kill DIR                    kill -9 it
set -euo pipefail

cmd=${1:?usage: redis-test.sh start DIR PORT [PASSWORD] | stop DIR | kill DIR}
dir=${2:?missing DIR}
bin=${REDIS_SERVER:-redis-server}

pid_of() { [ -s "$dir/redis.pid" ] && cat "$dir/redis.pid"; }

wait_gone() {
  local pid=$1
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  echo "redis-test: redis $pid did not stop" >&2
  return 1
}

case "$cmd" in
  start)
    port=${3:?missing PORT}
    pass=${4:-}
    if ! command -v "$bin" >/dev/null; then
      # Debian's redis-server is in the test set of scripts/deps.sh.
      "$(dirname "$0")/../../scripts/deps.sh" test
      command -v "$bin" >/dev/null || { echo "redis-test: $bin not installed" >&2; exit 2; }
    fi
    mkdir -p "$dir"
    conf="$dir/redis.conf"
    {
      echo "bind 127.0.0.1"
      echo "port $port"
      echo "dir $dir"
      echo "daemonize yes"
      echo "pidfile $dir/redis.pid"
      echo "logfile $dir/redis.log"
      echo "save \"\""
      echo "appendonly yes"
      echo "appendfsync always"
      [ -n "$pass" ] && echo "requirepass $pass"
    } > "$conf"
    chmod 600 "$conf"
    rm -f "$dir/redis.pid"
    "$bin" "$conf"
    for _ in $(seq 1 200); do
      if [ -s "$dir/redis.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "$port" > "$dir/port"
        exit 0
      fi
      sleep 0.05
    done
    echo "redis-test: redis did not start; log:" >&2
    tail -20 "$dir/redis.log" >&2 || true
    exit 1
    ;;
  stop|kill)
    pid=$(pid_of) || exit 0
    kill -0 "$pid" 2>/dev/null || exit 0
    if [ "$cmd" = kill ]; then kill -9 "$pid"; else kill -TERM "$pid"; fi
    wait_gone "$pid"
    rm -f "$dir/redis.pid"
    ;;
  *)
    echo "usage: redis-test.sh start DIR PORT [PASSWORD] | stop DIR | kill DIR" >&2
    exit 2
    ;;
esac
