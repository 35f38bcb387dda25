"""Cluster objects as the store holds them: created and status-written through the API
registry over a real SQLite file, so views and rules are tested on what the agent and
the cluster-health controller actually leave there (defaults, server metadata,
validation), not on hand-written dicts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from flotilla.api.registry import Registry
from flotilla.client.desired import converge
from flotilla.resources.kinds import by_kind
from flotilla.store.sqlite import open_sqlite_store

Obj = dict[str, Any]
CLUSTER = by_kind("Cluster")


@asynccontextmanager
async def registry_at(folder: Path) -> AsyncIterator[Registry]:
    store = await open_sqlite_store(folder)
    try:
        yield Registry(store)
    finally:
        await store.close()


async def stored_cluster(
    registry: Registry,
    name: str,
    *,
    region: str = "cn-east",
    taints: list[Obj] | None = None,
    conditions: list[Obj] | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """Register cluster ``name`` (as ``flotilla cluster join`` does) and write its
    status (as the agent and cluster health do); returns the stored object."""
    await registry.create({
        "apiVersion": CLUSTER.api_version, "kind": "Cluster",
        "metadata": {"name": name, "labels": {"tier": "gold"}},
        "spec": {"region": region, "zone": f"{region}-a", "taints": taints or [], **spec},
    })
    wanted = {**(status or {})}
    if conditions is not None:
        wanted["conditions"] = conditions
    if wanted:
        def write(obj: Obj) -> bool:
            obj["status"] = wanted
            return True

        await converge(registry, CLUSTER, "", name, write)
    return await registry.get(CLUSTER, "", name)


def ready(status: str, reason: str = "ClusterReady") -> Obj:
    return {"type": "Ready", "status": status, "reason": reason, "message": "",
            "lastTransitionTime": "2027-01-15T08:00:00Z"}
