"""Autoscaling benchmark: from a traffic step to the new replicas serving, and to the
burst cluster serving, through the real system.

    ip netns exec NS .venv/bin/python -m tests.controllers.autoscaling.bench_autoscale \\
        [--rounds 3] [--rate 200] [--sync-period 2]

One `flotilla up` with the e2e's topology (two core clusters holding 6 one-CPU replicas
between them, a burst cluster; tests/controllers/autoscaling/test_fhpa_e2e.py) and the
shop behind the gateway at 2 replicas. Each round steps an open-loop GET load from 0 to
``--rate`` req/s through the gateway (bounded: 60 s, ``rate * 60`` requests) and
measures, from the step:

  serving3   seconds until a 3rd distinct pod answered: the first new replica serving
  serving8   seconds until 8 distinct pods have answered (the FederatedHPA's target is
             20 req/s per replica: 200 req/s asks for 10)
  burst      seconds until the first answer from the burst cluster
  failed     requests without a 200

Rounds alternate with a *reference* round in the same plane: no FederatedHPA, the
Deployment's replicas set to 10 by hand at the step (what an operator watching a
dashboard could do at best). The ratio autoscaled/reference is the autoscaler's cost:
measuring (two scrapes of the gateway), deciding (sync period) and its scale-up policy
(Kubernetes' default: +100 % or +4 pods per 15 s, so 2 -> 6 -> 10). Between rounds the
load stops and the shop goes back to 2 with no burst replica.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.controllers.autoscaling.test_fhpa_e2e import (
    ADDRESS,
    BURST,
    CLUSTERS,
    PacedLoad,
    manifests,
    split,
    wanted,
)
from tests.helpers import RUN_ROOT_VARIABLE, free_port, wait_for_sync
from tests.up.harness import Api, UpProcess

FHPA = "/apis/autoscaling.karmada.io/v1alpha1/namespaces/default/federatedhpas/shop"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments/shop"


def set_replicas(api: Api, n: int) -> None:
    r = api.client.patch(DEPLOY, json={"spec": {"replicas": n}},
                         headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text


def settle(api: Api) -> None:
    """Back to 2 replicas, none on the burst cluster, and 2 pods answering."""
    wait_for_sync(lambda: wanted(api) == 2 and BURST not in split(api)
                  and sum(split(api).values()) == 2, 90, interval=0.2, what="back to 2")


def one_round(up: UpProcess, api: Api, rate: float, autoscaled: bool,
              hpa: dict[str, Any]) -> dict[str, float]:
    if autoscaled:
        r = api.client.post(FHPA.rsplit("/", 1)[0], json=hpa)
        assert r.status_code == 201, r.text
    load = PacedLoad(f"http://{up.gateway}/", rate, limit=60.0).start()
    step = time.monotonic()
    if not autoscaled:
        set_replicas(api, 10)
    try:
        wait_for_sync(lambda: len(load.first_seen) >= 8 and any(
            c == BURST for c, _ in load.first_seen), 60, interval=0.1,
            what="8 pods and the burst cluster serving")
    finally:
        achieved = load.stop()
    seen = sorted(load.first_seen.values())
    burst = min(t for (c, _), t in load.first_seen.items() if c == BURST)
    out = {"serving3": seen[2] - step, "serving8": seen[7] - step, "burst": burst - step,
           "failed": float(len(load.failed)), "rate": achieved}
    if autoscaled:
        assert api.client.delete(FHPA).status_code == 200
    set_replicas(api, 2)
    settle(api)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sync-period", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autoscale-bench-") as tmp:
        os.environ[RUN_ROOT_VARIABLE] = tmp
        os.environ["FLOTILLA_HPA_SYNC_PERIOD"] = str(args.sync_period)
        # pods run as us, as in the tests (as root they would run as nobody, who cannot
        # enter this private temporary folder)
        os.environ.setdefault("FLOTILLA_POD_USER", f"{os.geteuid()}:{os.getegid()}")
        gateway_ip = ADDRESS.format(100)
        up = UpProcess(Path(tmp), CLUSTERS, gateway=f"{gateway_ip}:{free_port(gateway_ip)}",
                       gateway_admin=f"{gateway_ip}:{free_port(gateway_ip)}")
        try:
            api = up.wait_up()
            docs = manifests()
            hpa = docs.pop()  # the FederatedHPA is created per autoscaled round
            path = Path(tmp) / "shop.yaml"
            path.write_text("\n---\n".join(json.dumps(o) for o in docs))
            up.cli("apply", "-f", str(path))
            settle(api)
            wait_for_sync(lambda: int((api.client.get(DEPLOY).json().get("status") or {})
                                      .get("readyReplicas") or 0) == 2, 60, what="2 ready")
            results: dict[str, list[dict[str, float]]] = {"autoscaled": [], "reference": []}
            for i in range(args.rounds):
                for kind in ("autoscaled", "reference"):  # interleaved
                    got = one_round(up, api, args.rate, kind == "autoscaled", hpa)
                    results[kind].append(got)
                    print(f"round {i + 1} {kind:<10} " + "  ".join(
                        f"{k}={v:.1f}" for k, v in got.items()), flush=True)
            print(f"\nmedians of {args.rounds} interleaved rounds, {args.rate:.0f} req/s, "
                  f"sync period {args.sync_period:g} s:")
            for metric in ("serving3", "serving8", "burst"):
                auto = statistics.median(r[metric] for r in results["autoscaled"])
                ref = statistics.median(r[metric] for r in results["reference"])
                print(f"  {metric:<9} autoscaled {auto:5.1f} s  by hand {ref:5.1f} s  "
                      f"ratio {auto / ref:.2f}")
            failed = sum(r["failed"] for rs in results.values() for r in rs)
            print(f"  failed requests, all rounds: {failed:.0f}")
        finally:
            up.stop()


if __name__ == "__main__":
    main()
