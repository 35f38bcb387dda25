#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine with Python 3.11+,
# then run the linters and the whole suite. Used by the README and by CI (.ci/run).
#
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools the tests drive for real: dig (DNS tests), curl (HTTP checks), etcd and
# etcdctl (the store conformance suite runs every store test on a real etcd too),
# prometheus and promtool (alert rules, `flotilla up --prometheus`), chromium
# (the dashboard's browser tests drive it headless through Playwright, never a browser
# Playwright downloads itself).
need=()
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The Kubernetes fixture (scripts/kube-up.sh): built from Debian's source package with
# Debian's Go; kubectl drives the clusters in the tests.
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -f /usr/share/gocode/src/github.com/modern-go/reflect2/go_above_118.go ] \
  || need+=(golang-github-modern-go-reflect2-dev)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)
command -v kubectl >/dev/null 2>&1 || need+=(kubectl)  # 1.32, from the apt repository this machine kind configures
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "== installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2: built once (about
# 4.5 minutes on 2 cores) into ${FLOTILLA_KUBE_CACHE:-/var/cache/flotilla/kube-1.20.2},
# reused afterwards (well under a second).
echo "== Kubernetes control-plane binaries (scripts/kube-up.sh build; cached)"
kube_started=$SECONDS
bash scripts/kube-up.sh build >/dev/null
echo "   ready in $((SECONDS - kube_started)) s"

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
echo "== import layers (docs/architecture.md, Layers; contracts in pyproject.toml)"
.venv/bin/lint-imports --no-cache --no-logo
.venv/bin/python scripts/check_private_imports.py
# The README's first command as a newcomer runs it, before the suite: `flotilla up --demo`
# in this folder until it is up, then Ctrl-C. The suite then runs with the demo's
# .flotilla/ (a stopped up.json) left here, which no test may depend on. CI only
# (CI=true): the demo binds its fixed ports (127.0.0.1:8443, :8080, ...). Bounded: up to
# DEMO_READY_TIMEOUT s to come up, 60 s to stop; whatever it started is killed if not.
DEMO_READY_TIMEOUT=${DEMO_READY_TIMEOUT:-240}
DEMO_LOG=.flotilla/ci-demo.log
demo_pid=""

demo_groups() {  # process groups the demo recorded in .flotilla/up.json (ours only)
  .venv/bin/python - "$demo_pid" <<'PY'
import json, sys
from pathlib import Path
try:
    s = json.loads(Path(".flotilla/up.json").read_text())
except (OSError, ValueError):
    raise SystemExit(0)
if s.get("pid") != int(sys.argv[1]):
    raise SystemExit(0)  # another up's file: its numbers are not ours to signal
clusters = s.get("clusters", [])
groups = {int(c["pgid"]) for c in clusters}
groups |= {int(g) for c in clusters for g in c.get("groups", [])}
groups |= {int(s[k]["pgid"]) for k in ("gateway", "dns") if isinstance(s.get(k), dict)}
groups |= {int(s["serverPid"])} if "serverPid" in s else set()
print(*sorted(groups))
PY
}

live_groups() {  # live_groups PGID...: those with a member that is not a zombie
  [ $# -gt 0 ] || return 0
  .venv/bin/python -c 'import sys; from flotilla.up.supervisor import group_alive
print(*[g for g in sys.argv[1:] if group_alive(int(g))])' "$@"
}

wait_gone() {  # wait_gone PID SECONDS: true once PID has exited
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

stop_demo() {  # SIGINT (Ctrl-C); SIGTERM, then SIGKILL of every recorded group if stuck
  [ -n "$demo_pid" ] || return 0
  local groups left=""
  groups=$(demo_groups)
  kill -INT "$demo_pid" 2>/dev/null || true
  if ! wait_gone "$demo_pid" 60; then
    echo "flotilla up --demo did not stop within 60 s of SIGINT" >&2
    kill -TERM "$demo_pid" 2>/dev/null || true
    wait_gone "$demo_pid" 20 || kill -KILL "$demo_pid" 2>/dev/null || true
    left="up itself"
  fi
  wait "$demo_pid" 2>/dev/null || true
  # A zombie is not left behind: under a PID 1 that never reaps (some CI containers)
  # a pod killed with its agent stays one, yet nothing of it runs. `kill -0` counts
  # zombies, so ask /proc through the same rule `flotilla status` uses.
  for g in $(live_groups $groups); do
    left="$left group $g"
    kill -KILL -- "-$g" 2>/dev/null || true
  done
  demo_pid=""
  if [ -n "$left" ]; then
    echo "flotilla up --demo left processes behind:$left (killed)" >&2
    return 1
  fi
}

demo_then_stop() {
  mkdir -p .flotilla
  echo "== flotilla up --demo, then Ctrl-C (the README's first command)"
  trap 'stop_demo; tail -n 40 "$DEMO_LOG" >&2' EXIT
  trap 'exit 130' INT TERM  # so the EXIT trap stops the demo when this script is stopped
  # A background job of a script ignores SIGINT; undo that, so SIGINT is Ctrl-C to it.
  (trap - INT; exec .venv/bin/flotilla up --demo) >"$DEMO_LOG" 2>&1 &
  demo_pid=$!
  local deadline=$((SECONDS + DEMO_READY_TIMEOUT))
  until grep -q "Flotilla is up" "$DEMO_LOG"; do
    if ! kill -0 "$demo_pid" 2>/dev/null; then
      echo "flotilla up --demo exited before it was up" >&2
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "flotilla up --demo was not up within ${DEMO_READY_TIMEOUT}s" >&2
      exit 1
    fi
    sleep 1
  done
  stop_demo
  trap - EXIT INT TERM
  grep -q "everything stopped" "$DEMO_LOG" || { tail -n 40 "$DEMO_LOG" >&2; exit 1; }
  echo "   up, stopped; .flotilla/ left in place for the suite"
}

if [ "${CI:-}" = true ]; then
  demo_then_stop
fi

echo "== pytest"
exec .venv/bin/pytest "$@"
