#!/usr/bin/env bash
# Debian packages the test suite drives for real: wrk (benchmark smoke test),
# chromium (the report is checked in a headless browser), docker.io (the docker
# chaos driver) and postgresql (examples/pg_redis_shop, started on loopback by its test). Installs only what is missing, in one apt-get run. Safe to run again.
# Without root or apt-get it installs nothing and says so: the tests that need a
# missing tool then skip with the reason (or fail, under CI=true).
set -euo pipefail
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]} and cannot install them here (needs root and apt-get)" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
