"""Status conditions: one way to read them and one way to write them.

Every writer of a condition (cluster health's ``Ready``, the scheduler's ``Scheduled``,
failover's ``Failover``, discovery's ``Valid``/``Conflict``, the agent's ``Applied``)
follows the rule of Kubernetes' ``meta.SetStatusCondition``: ``lastTransitionTime``
moves only when ``status`` changes, so "Ready=False since 10:02" stays true while the
reason or message is reworded. Every reader follows ``meta.FindStatusCondition``: the
*first* condition of a type is the one that counts, so a list holding two ``Ready``
entries (a hand edit, a bad merge) cannot make one component see a ready cluster and
another an unready one.

Reads are defensive (a ``conditions`` that is not a list, an entry that is not a
mapping): readers run on whatever the store holds, including objects written before a
field was validated. Writes edit a list the caller owns (a copy taken inside
`flotilla.client.desired.converge`, never an informer's cached object).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from flotilla.resources.wellknown import now_rfc3339

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition a writer wants in place. It has no time: `set_condition` decides
    whether the transition time moves."""

    type: str
    status: str  # TRUE | FALSE | UNKNOWN
    reason: str
    message: str = ""
    observed_generation: int | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Condition:
        """The condition a stored (or freshly built) dict describes; its time is dropped."""
        generation = raw.get("observedGeneration")
        return cls(str(raw.get("type") or ""), str(raw.get("status") or ""),
                   str(raw.get("reason") or ""), str(raw.get("message") or ""),
                   generation if isinstance(generation, int)
                   and not isinstance(generation, bool) else None)

    def as_dict(self, transition_time: str) -> dict[str, Any]:
        """The ``metav1.Condition`` shape the API stores."""
        out: dict[str, Any] = {"type": self.type, "status": self.status,
                               "reason": self.reason, "message": self.message,
                               "lastTransitionTime": transition_time}
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        return out


def _entries(conditions: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(conditions, list | tuple):
        yield from (c for c in conditions if isinstance(c, Mapping))


def conditions_of(obj: object) -> object:
    """``status.conditions`` of a stored object, whatever it holds (for `find`)."""
    if not isinstance(obj, Mapping):
        return None
    status = obj.get("status")
    return status.get("conditions") if isinstance(status, Mapping) else None


def find(conditions: object, type_: str) -> Mapping[str, Any] | None:
    """The condition of ``type_`` that counts: the first one (``FindStatusCondition``)."""
    return next((c for c in _entries(conditions) if c.get("type") == type_), None)


def status_of(conditions: object, type_: str) -> str:
    """``status`` of the condition of ``type_``; "" when there is none."""
    found = find(conditions, type_)
    status = found.get("status") if found is not None else None
    return status if isinstance(status, str) else ""


def is_true(conditions: object, type_: str) -> bool:
    """The condition of ``type_`` says exactly ``"True"`` (a missing one says nothing)."""
    return status_of(conditions, type_) == TRUE


def set_condition(conditions: list[Any], wanted: Condition, now: str | None = None) -> bool:
    """Put ``wanted`` into ``conditions`` (``meta.SetStatusCondition``); True if it changed.

    The condition keeps its place in the list and any field this module does not know
    (``lastHeartbeatTime``); its ``lastTransitionTime`` is kept when the status is
    unchanged and set to ``now`` (default: the current time) otherwise, or when it had
    none. A new type is appended.
    """
    at = next((i for i, c in enumerate(conditions)
               if isinstance(c, Mapping) and c.get("type") == wanted.type), None)
    if at is None:
        conditions.append(wanted.as_dict(now or now_rfc3339()))
        return True
    old: Mapping[str, Any] = conditions[at]
    kept = old.get("lastTransitionTime")
    since = kept if old.get("status") == wanted.status and kept else now or now_rfc3339()
    new = {**old, **wanted.as_dict(str(since))}
    if wanted.observed_generation is None:
        new.pop("observedGeneration", None)
    if new == old:
        return False
    conditions[at] = new  # a new dict: the old one may be shared with a reader
    return True


def set_conditions(obj: MutableMapping[str, Any], wanted: Iterable[Condition],
                   now: str | None = None) -> bool:
    """`set_condition` for each of ``wanted`` on ``obj``'s ``status.conditions``, keeping
    every condition of another type; True if anything changed (nothing is touched, not
    even an empty ``status`` added, when nothing did)."""
    status = obj.get("status")
    current = status.get("conditions") if isinstance(status, Mapping) else None
    conditions = list(current) if isinstance(current, list) else []
    changed = False
    for condition in wanted:
        changed |= set_condition(conditions, condition, now)
    if changed:
        if not isinstance(status, MutableMapping):
            status = obj["status"] = {}
        status["conditions"] = conditions
    return changed
