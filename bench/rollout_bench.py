"""Rollout benchmark: what users notice of a cluster-by-cluster rollout of the demo shop,
under a steady GET load through the gateway, through the real system over HTTPS.

    .venv/bin/python bench/rollout_bench.py [--rate 50] [--timeout 120] [--only nostart]

Starts `flotilla up --demo` (via failover_bench.Plane: three clusters, the shop and its
RolloutPolicy -- canary east-1, then the rest -- and a gateway) in a temp folder on free
loopback ports, and for each scenario applies the demo's Deployment with the env
changed, the way the README's tour does (`flotilla apply -f -`), while an open-loop load
(failover_bench.Load, bounded by ``--timeout`` seconds and ``--rate * --timeout``
requests) runs:

  good  SHOP_VERSION v1 -> v2. done_s: seconds from the apply until the rollout state on
        the Deployment's ResourceBinding says Succeeded on the new revision (every
        cluster pinned to it, its pods passed the ready gate); failed requests (goal 0);
        the share of answers from v2 per 5 s bucket.
  bad   SHOP_VERSION v3 with SHOP_FAIL_RATE=1 (every GET but /healthz answers 500, so
        the pods are ready and the canary fails the error-rate gate). rollback_s: seconds
        from the apply until the state says Failed with every cluster pinned back to the
        stable revision; restored_s: from the apply until no v3 shop process is left
        (process table); failed requests (the canary's 500s the gateway forwarded before
        it ejected them or the rollback removed them), and when the first and last
        failure came, in seconds after the apply.
  nostart  SHOP_VERSION v4 with SHOP_FAIL_RATE=not-a-number (the app exits at start,
        its pods never get ready): the ready gate fails after the RolloutPolicy's
        readyTimeout, set to ``--ready-timeout`` (15 s) in the manifest applied (the
        demo's manifest carries the RolloutPolicy, so the apply sets it); same figures
        as bad.

The API is HTTPS (the default): the client verifies with <data-dir>/pki/ca.crt as named
by up.json, and the CLI gets server, token and CA through FLOTILLA_SERVER/TOKEN/CA_FILE.
Everything started is stopped at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from failover_bench import DEMO_MAX_REPLICAS, DESIRED, FLOTILLA, ROOT, SHOP_APP, Load, Plane
from flotilla.resources import rollout_state as st
from flotilla.resources.naming import binding_name

BINDING = ("/apis/work.flotilla.io/v1alpha1/namespaces/default/resourcebindings/"
           + binding_name("Deployment", "shop"))
V1 = "- {name: SHOP_VERSION, value: v1}"
DEMO_READY_TIMEOUT = "readyTimeout: 2m"


def processes_of(version: str) -> int:
    """Live shop pods running ``version``, from /proc (what really runs, not the pins)."""
    n = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if SHOP_APP.encode() in cmd and f"SHOP_VERSION={version}".encode() in env.split(b"\0"):
            n += 1
    return n


#: What each scenario changes in the demo's pod template besides SHOP_VERSION.
BROKEN = {
    "good": None,
    # Every GET but /healthz answers 500: ready pods that fail the error-rate gate.
    "bad": "1",
    # float() of this fails at import: the pod exits at once and never gets ready.
    "nostart": "not-a-number",
}


def manifest(plane: Plane, version: str, fail_rate: str | None,
             ready_timeout: float | None = None) -> str:
    """The demo's manifest with the shop's env changed and, if asked, the RolloutPolicy's
    readyTimeout: the manifest carries the policy too, so applying it puts back whatever
    it says (a readyTimeout changed through the API alone would be undone by the apply).
    The FederatedHPA in it stays pinned at the demo's 6 (`Plane.pin_autoscaler`)."""
    text = (plane.data_dir / "demo" / "shop.yaml").read_text()
    if V1 not in text:
        raise SystemExit(f"the demo manifest has no line {V1!r}")
    line = V1.replace("v1", version)
    if fail_rate is not None:
        line += f'\n        - {{name: SHOP_FAIL_RATE, value: "{fail_rate}"}}'
    text = text.replace(V1, line)
    # the apply would put back the FederatedHPA's bound Plane.pin_autoscaler lowered
    if DEMO_MAX_REPLICAS not in text:
        raise SystemExit(f"the demo manifest has no {DEMO_MAX_REPLICAS!r}")
    text = text.replace(DEMO_MAX_REPLICAS, f"maxReplicas: {DESIRED}")
    if ready_timeout is not None:
        if DEMO_READY_TIMEOUT not in text:
            raise SystemExit(f"the demo manifest has no {DEMO_READY_TIMEOUT!r}")
        text = text.replace(DEMO_READY_TIMEOUT, f"readyTimeout: {ready_timeout:g}s")
    return text


def check_ready_timeout(plane: Plane, seconds: float) -> None:
    """The RolloutPolicy in force has the readyTimeout the bench applied."""
    assert plane.api is not None
    url = "/apis/apps.flotilla.io/v1alpha1/namespaces/default/rolloutpolicies/shop"
    got = (plane.api.get(url).json().get("spec") or {}).get("analysis") or {}
    if got.get("readyTimeout") != f"{seconds:g}s":
        raise SystemExit(f"the RolloutPolicy has readyTimeout {got.get('readyTimeout')!r}, "
                         f"not {seconds:g}s")


def apply(plane: Plane, text: str) -> None:
    state = json.loads((plane.data_dir / "up.json").read_text())
    env = {**os.environ, "FLOTILLA_SERVER": state["server"], "FLOTILLA_TOKEN": state["token"],
           "FLOTILLA_CA_FILE": state["ca"]}
    r = subprocess.run([*FLOTILLA, "apply", "-f", "-"], input=text.encode(), cwd=ROOT,
                       env=env, capture_output=True, timeout=30)
    if r.returncode:
        raise SystemExit(f"flotilla apply failed: {r.stderr.decode()}")


def rollout(plane: Plane) -> tuple[st.RolloutState | None, dict[str, int]]:
    assert plane.api is not None
    r = plane.api.get(BINDING)
    if r.status_code != 200:
        return None, {}
    binding: dict[str, Any] = r.json()
    return st.load(binding), st.pins(binding)


def shares(load: Load, start: float, bucket: float, version: str) -> list[float]:
    """Share of answers from ``version`` per ``bucket`` seconds after ``start``."""
    counts: dict[int, list[int]] = {}
    for when, v in load.versions:
        if when >= start:
            c = counts.setdefault(int((when - start) // bucket), [0, 0])
            c[0] += v == version
            c[1] += 1
    return [round(counts[i][0] / counts[i][1], 2) if i in counts and counts[i][1] else 0.0
            for i in range(max(counts, default=-1) + 1)]


def scenario(plane: Plane, name: str, version: str, rate: float,
             timeout: float, ready_timeout: float | None = None) -> dict[str, object]:
    fail = BROKEN[name] is not None
    load = Load(f"http://{plane.gateway}/", rate)
    before, _ = rollout(plane)
    result: dict[str, object] = {"scenario": name, "version": version,
                                 "from_revision": before.revision if before else None}

    async def drive() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(load.run(timeout, int(rate * timeout), stop))
        await asyncio.sleep(3)  # warm-up traffic before the change (bounded)
        await asyncio.to_thread(apply, plane,
                                manifest(plane, version, BROKEN[name], ready_timeout))
        applied = time.monotonic()
        if ready_timeout is not None:
            await asyncio.to_thread(check_ready_timeout, plane, ready_timeout)

        def finished() -> bool:
            state, pins = rollout(plane)
            if state is None or before is None or state.revision == before.revision:
                return False
            result["revision"] = state.revision
            if fail:
                return state.phase == st.FAILED and set(pins.values()) == {state.stable}
            return state.phase == st.SUCCEEDED and set(pins.values()) == {state.revision}

        try:
            took = await asyncio.to_thread(plane.wait, f"{name} rollout", finished, timeout)
            result["rollback_s" if fail else "done_s"] = round(took, 1)
            if fail:
                await asyncio.to_thread(
                    plane.wait, f"no {version} process", lambda: processes_of(version) == 0,
                    timeout)
                result["restored_s"] = round(time.monotonic() - applied, 1)
            await asyncio.to_thread(plane.wait, "ready", lambda: plane.ready() == DESIRED,
                                    timeout)
            await asyncio.sleep(2)  # a little load after the end, to see stragglers
        except SystemExit as exc:
            result["error"] = str(exc)
        stop.set()
        await runner
        state, _ = rollout(plane)
        result["phase"] = state.phase if state else None
        result["message"] = state.message if state else None
        if state is not None and state.run is not None:  # a wave still running
            result["wave_started_ago_s"] = round(time.time() - state.run.started_at, 1)
        mine = [w for w, v in load.versions if v == version]
        if mine:
            result["first_new_answer_s"] = round(mine[0] - applied, 1)
            result["last_new_answer_s"] = round(mine[-1] - applied, 1)
        result["share_new_per_5s"] = shares(load, applied, 5.0, version)
        if load.failures:
            result["first_failure_s"] = round(load.failures[0][0] - applied, 1)
            result["last_failure_s"] = round(load.failures[-1][0] - applied, 1)

    asyncio.run(drive())
    result.update(sent=load.sent, failed=load.failed, errors=load.errors, served=load.served,
                  achieved_rps=round(load.sent / max(load.elapsed, 1e-9), 1))
    return result


def table(results: list[dict[str, object]]) -> str:
    cols = ["scenario", "version", "phase", "done_s", "rollback_s", "restored_s", "sent",
            "failed", "achieved_rps"]
    rows = [cols] + [[str(r.get(c, "-")) for c in cols] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
                     for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="GETs per second")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="at most this many seconds of load and waiting per scenario")
    parser.add_argument("--only", choices=sorted(BROKEN), help="run one scenario")
    parser.add_argument("--ready-timeout", type=float, default=15.0,
                        help="the RolloutPolicy's readyTimeout for the nostart scenario "
                             "(the demo's 2m would exceed --timeout)")
    args = parser.parse_args()
    if args.rate <= 0 or args.timeout <= 0 or args.ready_timeout <= 0:
        parser.error("--rate, --timeout and --ready-timeout must be positive")
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="flotilla-rollout-bench-") as tmp:
        plane = Plane(Path(tmp))
        try:
            plane.start()
            plane.wait("rollout adopted", lambda: rollout(plane)[0] is not None, 60)
            for name, version in (("good", "v2"), ("bad", "v3"), ("nostart", "v4")):
                if args.only in (None, name):
                    results.append(scenario(
                        plane, name, version, args.rate, args.timeout,
                        args.ready_timeout if name == "nostart" else None))
        finally:
            plane.stop()
    print(table(results))
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
