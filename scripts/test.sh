#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine with Python 3.11+,
# then run the linters and the whole suite. Used by the README and by CI (.ci/run).
#
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools the tests drive for real: dig (DNS tests), curl (HTTP checks).
need=()
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "== installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing flotilla and its pinned dev dependencies"
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy (strict on the package)"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
