#!/usr/bin/env bash
# Installs the Debian tools the test suite drives for real (idempotent: a no-op when present):
# Chromium (Playwright + Lighthouse), pgbouncer and Prometheus (promtool). Tests that need a
# tool skip with a reason if it still cannot be had, so an offline box degrades, not breaks.
set -uo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
      || echo "could not install ${missing[*]}: the tests that need them will skip"
  else
    echo "not root: cannot install ${missing[*]}; the tests that need them will skip"
  fi
fi
exit 0
