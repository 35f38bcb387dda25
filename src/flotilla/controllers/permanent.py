"""Permanent errors: a reconcile that retrying cannot fix ends, visibly, until its input changes.

A transient failure (the API unreachable, a write conflict) heals by itself, so the
controller retries it with per-key back-off. A permanent one (invalid input, a quantity
that does not parse, a placement that can never be satisfied) fails the same way on
every retry: retrying it forever burns the workers and buries the log, and the user
never learns why nothing happens. So a reconciler raises `PermanentError` and the
`Controller`:

* records a Warning Event on the object, with the error's reason and message;
* sets the condition ``<Name>Stalled=True`` on it (kinds with a status), naming the
  cause and the generation it gave up on, and removes that condition again after the
  next successful reconcile of the key;
* does not retry the key: events of that same object that leave everything but its
  status unchanged (its own condition write, a resync) are dropped. A change of its spec
  or metadata, its deletion, or a change of another watched object that maps to the key
  wakes it (the fix may be elsewhere: an OverridePolicy edited, a cluster joined).

The stall is remembered in memory only, on purpose: a restarted, perhaps upgraded,
controller looks at every object once more, so a parser fixed in a new release gets its
chance without anyone touching the objects.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from flotilla.client.base import Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.resources.conditions import Condition, conditions_of, find, set_conditions
from flotilla.resources.kinds import Kind, UnknownKind, for_api_version
from flotilla.resources.views import Meta

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """A reconcile failure that retrying the same input cannot fix.

    ``reason`` is a CamelCase word for machines (``InvalidQuantity``), ``message`` names
    the field or object that is wrong for people. ``obj`` is the object the error is
    about, when it is not the one the controller's own key names (the binder's keys name
    templates of several kinds).
    """

    def __init__(self, reason: str, message: str, *, obj: Object | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.obj = obj


def fingerprint(obj: Object) -> str:
    """Everything of ``obj`` but its status and resourceVersion: what a person changes to
    fix an input, and what a controller's own status write leaves alone."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    return json.dumps([meta, rest], sort_keys=True, default=str)


def uid_of(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


@dataclass(frozen=True, slots=True)
class Stall:
    """A key given up on: why, and the version of the object it was given up on."""

    reason: str
    message: str
    uid: str
    fingerprint: str

    def unchanged(self, obj: Object) -> bool:
        """``obj`` is the object this stall is about, with nothing but its status changed."""
        return uid_of(obj) == self.uid and fingerprint(obj) == self.fingerprint


def condition_type(controller_name: str) -> str:
    """``scheduler`` -> ``SchedulerStalled``: one condition per controller, so two
    controllers stalled on one object do not overwrite each other's cause."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[-_ .]+", controller_name)
                   if p) + "Stalled"


async def mark_stalled(client: ResourceClient, obj: Object, type_: str,
                       error: PermanentError) -> None:
    """Set ``type_``=True with the error's cause on ``obj`` (no-op for status-less kinds)."""
    kind = _kind_with_status(obj)
    if kind is None:
        return
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    wanted = Condition(type_, "True", error.reason, error.message, generation)

    def change(current: Object) -> None:
        set_conditions(current, [wanted])

    meta = Meta.of(obj.get("metadata"))
    await converge(client, kind, meta.namespace, meta.name, change)


def has_condition(obj: Object, type_: str) -> bool:
    return find(conditions_of(obj), type_) is not None


async def clear_stalled(client: ResourceClient, obj: Object, type_: str) -> None:
    """Remove ``type_`` from ``obj``: the controller acts on it again."""
    kind = _kind_with_status(obj)
    if kind is None:
        return

    def change(current: Object) -> None:
        status = current.get("status") or {}
        conditions = list(status.get("conditions") or [])
        kept = [c for c in conditions if c.get("type") != type_]
        if kept != conditions:
            status["conditions"] = kept
            current["status"] = status

    meta = Meta.of(obj.get("metadata"))
    await converge(client, kind, meta.namespace, meta.name, change)


def _kind_with_status(obj: Object) -> Kind | None:
    try:
        kind = for_api_version(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
    except UnknownKind:
        return None
    return kind if kind.has_status else None
