#!/usr/bin/env bash
# Installs, with apt-get, exactly the Debian packages latchkey needs that are missing.
# Usage: scripts/deps.sh [build|test|bench]   (each set includes the ones before it)
set -euo pipefail

want=(gcc make pkg-config zlib1g-dev libh2o-evloop-dev libssl-dev libsodium-dev libsqlite3-dev
      libjansson-dev liburcu-dev libpq-dev libhiredis-dev)
case "${1:-build}" in
  test)  want+=(clang libclang-rt-14-dev libcmocka-dev python3 python3-pytest python3-requests
               python3-jsonschema python3-prometheus-client nginx-light caddy curl openssl
               nghttp2-client chromium redis-server postgresql) ;;
  bench) want+=(wrk nginx-light curl openssl nghttp2-client postgresql redis-server redis-tools
               python3-requests linux-perf) ;;
esac

# The dashboard's bundler runs on node; a nodejs that ships npm itself (NodeSource)
# conflicts with Debian's npm package, so npm is asked for only when absent.
want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
