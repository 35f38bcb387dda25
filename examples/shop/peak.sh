#!/usr/bin/env bash
# A sales peak for the shop demo: a bounded traffic ramp through the gateway that drives
# the demo's own FederatedHPA (examples/shop/shop.yaml: min 6, max 12, 25 req/s a
# replica), so you can watch the shop and burst-1 fill up and drain again.
#
#   flotilla up --demo                  # one terminal
#   examples/shop/peak.sh               # another, in the same folder
#   flotilla get deploy -o wide -w      # a third: replicas per cluster
#   flotilla describe fhpa shop         # the autoscaler's view and its decisions
#
# Usage: examples/shop/peak.sh [--overflow] [PEAK_RPS] [STEP_SECONDS] [GATEWAY]
#   defaults: 300 req/s peak (12 replicas' worth), 20 s per step, the gateway named by
#   ./.flotilla/up.json (else 127.0.0.1:8080). PEAK_RPS at most 2000, STEP_SECONDS 5-120.
# The ramp is 25 %, 50 %, 75 %, 100 %, 100 %, 50 %, 0 % of the peak, one step each, then
# it waits (at most 3 min) for the shop to be back at its minimum: at most
# PEAK_RPS x STEP_SECONDS x 4 requests. Every 5 s it prints the rate asked and reached,
# failed requests, the answering clusters and the replicas per cluster. Exit status 1
# if a request failed or the shop did not come back down in time.
#
# The demo divides the shop by its static 2:1 weights, so burst-1 grows with the others
# (12 -> east-1 6, south-1 3, burst-1 3). --overflow shows a burst tier instead: it
# re-applies the shop asking 2 CPUs a replica (the demo's 12-CPU clusters hold 6 each)
# and examples/shop/autoscale.yaml (min 2, max 16, dynamic division), so burst-1 takes
# only what the core clusters cannot hold and is emptied first. Put the demo back with
# `flotilla apply -f .flotilla/demo/shop.yaml`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
flotilla=${FLOTILLA:-flotilla}
overflow=0
args=()
for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    --overflow) overflow=1 ;;
    -*) echo "peak.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) args+=("$arg") ;;
  esac
done
peak=${args[0]:-300}
step=${args[1]:-20}
gateway=${args[2]:-}

if ! "$flotilla" get fhpa shop >/dev/null; then
  echo "peak.sh: no FederatedHPA shop here: start 'flotilla up --demo' in this folder" >&2
  exit 1
fi
if [ "$overflow" = 1 ]; then
  # 2 CPUs a replica: the demo's 12-CPU clusters then hold 6 each.
  sed -e "s|requests: {cpu: 100m, memory: 64Mi}|requests: {cpu: \"2\", memory: 64Mi}|" \
      -e "s|examples/shop/app.py|$here/app.py|" "$here/shop.yaml" \
    | "$flotilla" apply -f -
  "$flotilla" apply -f "$here/autoscale.yaml"
fi

exec python3 - "$peak" "$step" "$gateway" "$flotilla" <<'PY'
"""Open-loop GETs at each step's rate (threads on one shared schedule, keep-alive
connections); every 5 s a line with the rate reached, failed requests, which clusters
answered and the replicas per cluster."""
import collections, http.client, json, pathlib, subprocess, sys, threading, time

peak, step, gateway, flotilla = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
if not 0 < peak <= 2000 or not 5 <= step <= 120:
    sys.exit("peak.sh: PEAK_RPS must be in (0, 2000] and STEP_SECONDS in [5, 120]")
if not gateway:
    try:
        gateway = json.loads(pathlib.Path(".flotilla/up.json").read_text())["gateway"]["listen"]
    except (OSError, ValueError, KeyError, TypeError):
        gateway = "127.0.0.1:8080"
host, port = gateway.rsplit(":", 1)
RAMP, TICK, DRAIN = (0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0), 5.0, 180.0
lock = threading.Lock()
answered: collections.Counter = collections.Counter()
failed = [0]


def shop() -> tuple[dict, int, int]:
    """Replicas per cluster (the scheduler's split), the FederatedHPA's desired and min."""
    out = subprocess.run([flotilla, "get", "rb/shop-deployment", "fhpa/shop", "-o", "json"],
                         capture_output=True, text=True, timeout=20)
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        return {}, 0, 0
    items = doc.get("items", [doc])
    rb = next((i for i in items if i.get("kind") == "ResourceBinding"), {})
    hpa = next((i for i in items if i.get("kind") == "FederatedHPA"), {})
    split = {t["name"]: t["replicas"] for t in (rb.get("spec") or {}).get("clusters") or []}
    return (split, int((hpa.get("status") or {}).get("desiredReplicas") or 0),
            int((hpa.get("spec") or {}).get("minReplicas") or 0))


def show(split: dict) -> str:
    return f"{sum(split.values())} replicas " + " ".join(
        f"{k}={v}" for k, v in sorted(split.items()))


def worker(slots, start: float, rate: float) -> None:
    conn = None
    while True:
        with lock:
            n = next(slots, None)
        if n is None:
            break
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
        try:
            conn = conn or http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", "/", headers={"Host": "shop.example.test"})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise OSError(f"HTTP {r.status}")
            cluster = json.loads(body).get("cluster", "?")
            with lock:
                answered[cluster] += 1
        except (OSError, ValueError, http.client.HTTPException):
            with lock:
                failed[0] += 1
            if conn:
                conn.close()
            conn = None
    if conn:
        conn.close()


began, most, most_burst = time.monotonic(), 0, 0
print(f"peak.sh: {peak:g} req/s peak through {gateway}, {step:g} s a step; "
      f"at rest: {show(shop()[0])}", flush=True)
for share in RAMP:
    rate, t0 = peak * share, time.monotonic()
    slots = iter(range(int(rate * step)))
    threads = [threading.Thread(target=worker, args=(slots, t0, rate), daemon=True)
               for _ in range(16 if rate else 0)]
    for t in threads:
        t.start()
    with lock:
        base = sum(answered.values()) + failed[0]
    while time.monotonic() - t0 < step or any(t.is_alive() for t in threads):
        if time.monotonic() - t0 > step * 3:
            break  # a gateway that stopped answering: leave the stragglers (timeout 10 s)
        time.sleep(min(TICK, max(0.1, t0 + step - time.monotonic())))
        split, desired, _ = shop()
        most = max(most, sum(split.values()))
        most_burst = max(most_burst, split.get("burst-1", 0))
        with lock:
            done = sum(answered.values()) + failed[0] - base
            by = dict(sorted(answered.items()))
            bad = failed[0]
        took = time.monotonic() - t0
        print(f"{time.monotonic() - began:5.0f}s  {rate:4.0f} req/s asked, "
              f"{done / took:4.0f} reached, {bad} failed  | {show(split)} (desired "
              f"{desired})  | answered {by}", flush=True)

deadline, back = time.monotonic() + DRAIN, False
while time.monotonic() < deadline:
    split, desired, low = shop()
    print(f"{time.monotonic() - began:5.0f}s  draining: {show(split)} (desired {desired}, "
          f"min {low})", flush=True)
    if low and sum(split.values()) == low and desired == low:
        back = True
        break
    time.sleep(TICK)
total = sum(answered.values()) + failed[0]
print(f"peak.sh: {total} requests, {failed[0]} failed; at most {most} replicas, "
      f"{most_burst} on burst-1; " + ("back at rest" if back else
                                      f"not back at rest after {DRAIN:.0f} s"), flush=True)
sys.exit(0 if back and not failed[0] else 1)
PY
