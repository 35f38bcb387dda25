"""A stand-in agent process for adoption tests: runs a local cluster with one
Deployment, prints its pods' pids as JSON once they are ready, then either stops with
keep_pods=True and exits ("detach") or keeps running until killed ("hold")."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.runtimes.conftest import FAST, deployment

from flotilla.runtimes.local import LocalClusterConfig, LocalRuntime
from flotilla.runtimes.local.users import agent_user


async def main(state_dir: str, cluster: str, mode: str) -> None:
    rt = LocalRuntime(LocalClusterConfig.uniform(cluster, Path(state_dir), timings=FAST,
                                                 pod_user=agent_user()))
    await rt.start()
    await rt.apply([deployment("web", 2)])
    async for _ in rt.changes():
        pods = rt.pods()
        if len(pods) == 2 and all(p.ready for p in pods):
            break
    print(json.dumps({p.name: p.containers[0].pid for p in pods}), flush=True)
    if mode == "detach":
        await rt.stop(keep_pods=True)
    else:
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
