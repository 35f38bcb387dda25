"""The application-failover clock: since when a workload has been Unhealthy per cluster.

It is kept on the ResourceBinding (annotation ``failover.flotilla.io/unhealthy-since``,
a JSON map of cluster to RFC 3339 time), with the other failover state, not in the
controller's memory: a control plane restarted two minutes into a five-minute
``decisionConditions.tolerationSeconds`` must still evict at five minutes, not seven.
Pure functions; the controller passes its clock in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flotilla.controllers.failover.decide import unhealthy_clusters
from flotilla.resources.wellknown import parse_rfc3339, rfc3339_at

ANNOTATION_UNHEALTHY_SINCE = "failover.flotilla.io/unhealthy-since"
Obj = Mapping[str, Any]


def recorded(binding: Obj) -> dict[str, float]:
    """The times on the binding; an unreadable entry (a hand edit) is dropped, which
    restarts that cluster's clock rather than evicting early."""
    raw = ((binding.get("metadata") or {}).get("annotations") or {}).get(
        ANNOTATION_UNHEALTHY_SINCE)
    if not raw:
        return {}
    try:
        entries = json.loads(raw)
    except ValueError:
        return {}
    out: dict[str, float] = {}
    if isinstance(entries, dict):
        for cluster, stamp in entries.items():
            try:
                out[str(cluster)] = parse_rfc3339(str(stamp))
            except ValueError:
                continue
    return out


def unhealthy_since(binding: Obj, now: float) -> dict[str, float]:
    """Since when each cluster reported Unhealthy now has been so: the recorded time if
    there is one, else ``now``. A cluster that is healthy again loses its time."""
    known = recorded(binding)
    return {name: known.get(name, now) for name in sorted(unhealthy_clusters(binding))}


def encode(since: Mapping[str, float]) -> str | None:
    """The annotation value for ``since`` (None: no annotation)."""
    if not since:
        return None
    return json.dumps({k: rfc3339_at(v) for k, v in sorted(since.items())}, sort_keys=True)
