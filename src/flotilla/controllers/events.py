"""EventRecorder: tell users what a controller did and why, as v1 Events.

Events are how `flotilla describe` answers "why is my app not running": "FailedScheduling:
0/3 clusters match", "ClusterNotReady: heartbeat lost". Two rules shape this module:

* **Aggregation.** A controller that retries every few seconds would otherwise bury the
  namespace under identical Events. The same (object, type, reason, message, component)
  seen again within ``window`` seconds of its last occurrence bumps ``count`` and
  ``lastTimestamp`` on the existing Event instead, as Kubernetes does.
* **Never fail the caller.** An Event is a side channel; losing one must not turn a
  successful reconcile into a failed one. Every error is logged and swallowed.

Writes are serialised by one lock, so two concurrent identical events become one Event
with count 2 rather than two Events; Events are rare enough that this costs nothing.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from flotilla.client.base import ApiError, ConflictError, NotFoundError, Object, ResourceClient
from flotilla.controllers.metrics import ACTIVE
from flotilla.resources.kinds import by_kind
from flotilla.resources.naming import CLUSTER_EVENTS_NAMESPACE

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
EVENT_KIND = by_kind("Event")

def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class _Key:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    type: str
    reason: str
    message: str


@dataclass(slots=True)
class _Seen:
    event: Object
    last: float


class EventRecorder:
    """Records Events on behalf of one component (``source.component``)."""

    def __init__(
        self,
        client: ResourceClient,
        component: str,
        *,
        window: float = 600.0,
        max_tracked: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.component = component
        self.window = window
        self.max_tracked = max_tracked
        self.clock = clock
        self._seen: OrderedDict[_Key, _Seen] = OrderedDict()
        self._lock = asyncio.Lock()

    async def record(self, obj: Object, type: EventType, reason: str, message: str) -> None:
        """Record that ``reason``/``message`` happened to ``obj``. Never raises."""
        metrics = ACTIVE.get()
        if metrics is not None:
            metrics.event(self.component, type, reason)
        try:
            async with self._lock:
                await self._record(obj, type, reason, message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not record event %s %s for %s", type, reason,
                          _describe(obj))

    async def _record(self, obj: Object, type: EventType, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        key = _Key(
            api_version=str(obj.get("apiVersion") or ""),
            kind=str(obj.get("kind") or ""),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            type=type,
            reason=reason,
            message=message,
        )
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen.last <= self.window:
            updated = await self._bump(seen.event, now)
            if updated is not None:
                self._remember(key, updated, now)
                return
        created = await self.client.create(self._new_event(key, now))
        self._remember(key, created, now)

    async def _bump(self, event: Object, now: float) -> Object | None:
        """count+1 on the stored Event; None if it is gone (then a new one is made)."""
        for _ in range(3):
            bumped = copy.deepcopy(event)
            bumped["count"] = int(bumped.get("count") or 1) + 1
            bumped["lastTimestamp"] = rfc3339(now)
            try:
                return await self.client.update(bumped)
            except NotFoundError:
                return None
            except ConflictError:
                # Someone else (another replica, a user) touched it: start from theirs.
                meta = event.get("metadata") or {}
                try:
                    event = await self.client.get(EVENT_KIND, meta.get("namespace", ""),
                                                  meta.get("name", ""))
                except NotFoundError:
                    return None
        raise ApiError(409, "Conflict", "event kept changing under us")

    def _new_event(self, key: _Key, now: float) -> Object:
        namespace = key.namespace or CLUSTER_EVENTS_NAMESPACE
        involved: Object = {"apiVersion": key.api_version, "kind": key.kind, "name": key.name}
        if key.namespace:
            involved["namespace"] = key.namespace
        if key.uid:
            involved["uid"] = key.uid
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                # Kubernetes' naming: the object's name and a unique hex suffix.
                "name": f"{key.name}.{time.time_ns():x}",
                "namespace": namespace,
            },
            "involvedObject": involved,
            "type": key.type,
            "reason": key.reason,
            "message": key.message,
            "count": 1,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "source": {"component": self.component},
        }

    def _remember(self, key: _Key, event: Object, now: float) -> None:
        self._seen.pop(key, None)
        self._seen[key] = _Seen(event, now)
        while len(self._seen) > self.max_tracked:
            self._seen.popitem(last=False)


def _describe(obj: Object) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"
