#!/usr/bin/env bash
# A sales peak for the shop demo: a bounded traffic ramp through the gateway, so you can
# watch the shop scale out into the burst cluster and drain out of it again.
#
#   flotilla up --demo                  # one terminal
#   examples/shop/peak.sh               # another (applies examples/shop/autoscale.yaml)
#   flotilla get deploy -o wide -w      # a third: replicas per cluster
#   flotilla describe fhpa shop         # the autoscaler's view and its decisions
#
# Usage: examples/shop/peak.sh [PEAK_RPS] [STEP_SECONDS] [GATEWAY]
#   defaults: 360 req/s peak, 20 s per step, 127.0.0.1:8080 (flotilla up's gateway)
# The ramp is 25 %, 50 %, 75 %, 100 %, 100 %, 50 %, 0 % of the peak, one step each: at
# most 7 steps and PEAK_RPS x STEP_SECONDS x 4 requests. The shop is asked for 2 CPUs a
# replica (so core clusters fill up at 12); `flotilla apply -f examples/shop/shop.yaml`
# and `flotilla delete fhpa shop` put the demo back.
set -euo pipefail
peak=${1:-360}
step=${2:-20}
gateway=${3:-127.0.0.1:8080}
here=$(cd "$(dirname "$0")" && pwd)
flotilla=${FLOTILLA:-flotilla}

# 2 CPUs a replica: the demo's 12-CPU clusters then hold 6 each.
sed -e "s|requests: {cpu: 100m, memory: 64Mi}|requests: {cpu: \"2\", memory: 64Mi}|" \
    -e "s|examples/shop/app.py|$here/app.py|" "$here/shop.yaml" \
  | "$flotilla" apply -f -
"$flotilla" apply -f "$here/autoscale.yaml"

exec python3 - "$peak" "$step" "$gateway" <<'PY'
"""Open-loop GETs at each step's rate (threads share one schedule); prints, per step,
the rate reached, failed requests and which clusters answered."""
import collections, json, sys, threading, time, urllib.request

peak, step, gateway = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
url = f"http://{gateway}/"
lock = threading.Lock()

def run(rate: float) -> tuple[collections.Counter, int]:
    answered, failed, slots = collections.Counter(), [0], iter(range(int(rate * step)))
    start = time.monotonic()

    def worker() -> None:
        while True:
            with lock:
                n = next(slots, None)
            if n is None:
                return
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
            req = urllib.request.Request(url, headers={"Host": "shop.example.test"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    cluster = json.loads(r.read()).get("cluster", "?")
                with lock:
                    answered[cluster] += 1
            except Exception:
                with lock:
                    failed[0] += 1
    if rate <= 0:
        time.sleep(step)
        return answered, 0
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(step * 3)
    return answered, failed[0]

for share in (0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0):
    rate = peak * share
    t0 = time.monotonic()
    answered, failed = run(rate)
    took = time.monotonic() - t0
    done = sum(answered.values()) + failed
    print(f"{rate:5.0f} req/s asked, {done / took:5.0f} reached, {failed} failed, "
          f"by cluster {dict(sorted(answered.items()))}", flush=True)
PY
