"""The "Placement" part of ``flotilla describe deploy NAME``: the binding that governs
the template, where it is scheduled, the overrides each cluster received, and health."""

from __future__ import annotations

from typing import Any

from flotilla.client.base import NotFoundError, Object, ResourceClient
from flotilla.resources.kinds import by_kind

BINDING = by_kind("ResourceBinding")
WORK = by_kind("Work")


async def placement_rows(client: ResourceClient, template: Object
                         ) -> tuple[list[str], list[str], list[list[str]]]:
    """(summary lines, table headers, table rows) for a template's placement."""
    meta = template.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    name = f"{meta.get('name')}-{str(template.get('kind', '')).lower()}"
    try:
        binding = await client.get(BINDING, ns, name)
    except NotFoundError:
        return (["Placement:    <none> (no PropagationPolicy governs it)"], [], [])
    spec = binding.get("spec") or {}
    policy = spec.get("policy") or {}
    cond: dict[str, Any] = next((c for c in (binding.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Scheduled"), {})
    summary = [
        f"Placement:    ResourceBinding {ns}/{name}, policy "
        f"{policy.get('kind', '?')} {policy.get('name', '?')}",
        f"  Scheduled:  {cond.get('status', 'Unknown')} {cond.get('reason', '')} "
        f"{cond.get('message', '')}".rstrip(),
    ]
    works = await client.list(WORK, None, selector=f"flotilla.io/binding={ns}.{name}")
    overrides: dict[str, str] = {}
    for w in works.items:
        cluster = str(w["metadata"]["namespace"]).removeprefix("flotilla-es-")
        overrides[cluster] = str((w["metadata"].get("annotations") or {})
                                 .get("flotilla.io/overrides") or "-")
    status: dict[str, Any] = {
        s.get("clusterName"): s for s in (binding.get("status") or {}).get(
            "aggregatedStatus") or []}
    rows = []
    for target in spec.get("clusters") or []:
        cluster = str(target.get("name"))
        st = status.get(cluster) or {}
        ready = (st.get("status") or {}).get("readyReplicas", 0)
        rows.append([cluster, str(target.get("replicas", 0)), str(ready),
                     str(st.get("health", "Unknown")), overrides.get(cluster, "-")])
    return summary, ["CLUSTER", "DESIRED", "READY", "HEALTH", "OVERRIDES APPLIED"], rows
