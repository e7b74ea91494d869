#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: its own cluster in a scratch directory,
# on 127.0.0.1 and a free port, fsync on, owned by an unprivileged user.
#
#   tests/pg/pg-test.sh start DIR   initdb + start; prints the base URL
#                                   (postgres://latchkey:PASSWORD@127.0.0.1:PORT/postgres)
#   tests/pg/pg-test.sh halt DIR    stop the server, keep its data (fault tests)
#   tests/pg/pg-test.sh resume DIR  start it again on the same port
#   tests/pg/pg-test.sh stop DIR    stop the server and remove DIR
#   tests/pg/pg-test.sh url DIR     print the base URL again
#
# The role `latchkey` owns nothing but may create databases: each latchkey
# server under test gets a fresh one (CREATE DATABASE lk_<random>).
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|halt|resume|stop|url DIR" >&2; exit 2; }

pgbin=${PG_BIN:-}
if [ -z "$pgbin" ]; then
  for v in 17 16 15 14 13; do
    [ -x "/usr/lib/postgresql/$v/bin/initdb" ] && { pgbin=/usr/lib/postgresql/$v/bin; break; }
  done
fi
[ -n "$pgbin" ] || { echo "$0: no PostgreSQL server binaries (scripts/deps.sh test installs them)" >&2; exit 1; }

# postgres refuses to run as root: run it as a user of its own.
user=nobody
as_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}
if [ "$(id -u)" -eq 0 ]; then
  if ! id latchkey-test >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      latchkey-test 2>/dev/null || true
  fi
  id latchkey-test >/dev/null 2>&1 && user=latchkey-test
fi

pg_ctl_start() {
  local port; port=$(cat "$dir/port")
  as_user "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=on -c synchronous_commit=on -c max_connections=400 -c shared_buffers=32MB" \
    start >/dev/null
}

url() { echo "postgres://latchkey:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/postgres"; }

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    mkdir -p "$dir/sock"
    # letters and digits, so it needs no escaping in a URL
    head -c 64 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 24 > "$dir/password"
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' > "$dir/port"
    chmod 0755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown -R "$user" "$dir"
    chmod 0700 "$dir/sock"
    as_user "$pgbin/initdb" -D "$dir/data" -U latchkey --pwfile="$dir/password" -E UTF8 \
      --locale=C --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    pg_ctl_start || { tail -n 30 "$dir/postgres.log" >&2; exit 1; }
    url ;;
  halt)
    as_user "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
  resume)
    pg_ctl_start || { tail -n 30 "$dir/postgres.log" >&2; exit 1; } ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_user "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir" ;;
  url) url ;;
  *) echo "usage: $0 start|halt|resume|stop|url DIR" >&2; exit 2 ;;
esac
