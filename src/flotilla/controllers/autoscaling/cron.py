"""The CronFederatedHPA controller: at each rule's scheduled time, set the target.

A rule targeting a FederatedHPA sets its ``minReplicas``/``maxReplicas`` (the
FederatedHPA then scales the Deployment into the new bounds at once: a known peak is
pre-scaled before its traffic arrives, and the autoscaler still reacts above it); a rule
targeting a Deployment sets its ``replicas``. Karmada's behaviour, with its status:
``executionHistories`` per rule, the next execution time and the last successful and
failed executions (trimmed to the rule's history limits).

The next execution time lives in the status, so a new leader fires a rule whose time
passed while no controller ran (once, however many times it was missed; rules due
together fire in the order of their scheduled times, so the latest intent wins). A
changed spec (new generation) reschedules every rule from now and fires nothing.
Decisions take the wall clock as an argument, so tests drive it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flotilla.client.base import Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.resources.cron import CronError, parse_schedule, zone
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import parse_rfc3339, rfc3339_at

log = logging.getLogger(__name__)

CRON = by_kind("CronFederatedHPA")
#: Re-read the clock at least this often (a wall clock can jump; a requeue cannot).
MAX_WAIT = 60.0


def _utc(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromtimestamp(parse_rfc3339(text), UTC)
    except ValueError:
        return None


def _stamp(at: datetime) -> str:
    return rfc3339_at(at.timestamp())


def next_time(rule: Mapping[str, Any], after: datetime) -> datetime:
    """The rule's next firing strictly after ``after``, in UTC."""
    tz = zone(rule.get("timeZone"))
    at = parse_schedule(str(rule["schedule"]), with_seconds=True).next_after(
        after.astimezone(tz))
    if at is None:
        raise CronError(f"{rule['schedule']!r} never fires")
    return at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str
    applied: dict[str, int]


class CronFederatedHPAController:
    def __init__(self, client: ResourceClient, informers: dict[str, Informer], *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self.inf = informers
        self.clock = clock
        self.events = EventRecorder(client, "cron-federated-hpa")
        #: the generation each CronFederatedHPA's next times were computed for
        self._seen: dict[ObjectKey, int] = {}

    async def reconcile(self, key: ObjectKey) -> Result | None:
        obj = self.inf["CronFederatedHPA"].cache.get(key)
        if obj is None:
            self._seen.pop(key, None)
            return None
        now = self.clock()
        generation = int(obj["metadata"].get("generation") or 0)
        fresh = self._seen.get(key, generation) != generation
        self._seen[key] = generation
        histories = {h.get("ruleName"): dict(h) for h in
                     (obj.get("status") or {}).get("executionHistories") or []}
        rules = [r for r in (obj.get("spec") or {}).get("rules") or []]
        due: list[tuple[datetime, dict[str, Any]]] = []
        out: list[dict[str, Any]] = []
        for rule in rules:
            history = histories.get(rule["name"], {"ruleName": rule["name"]})
            out.append(history)
            if rule.get("suspend"):
                history.pop("nextExecutionTime", None)
                continue
            planned = None if fresh else _utc(history.get("nextExecutionTime"))
            if planned is not None and planned <= now:
                due.append((planned, rule))
            try:
                history["nextExecutionTime"] = _stamp(next_time(rule, now))
            except CronError as exc:  # checked at apply time; an old object may not be
                history.pop("nextExecutionTime", None)
                log.warning("CronFederatedHPA %s rule %s: %s", key, rule["name"], exc)
        by_name = {h["ruleName"]: h for h in out}
        for planned, rule in sorted(due, key=lambda d: d[0]):
            outcome = await self._execute(key.namespace, obj, rule)
            self._record(by_name[rule["name"]], rule, planned, now, outcome)
            await self.events.record(
                obj, "Normal" if outcome.ok else "Warning",
                "ScaleTargetUpdated" if outcome.ok else "FailedUpdateScaleTarget",
                f"rule {rule['name']} ({rule['schedule']}): {outcome.message}")

        def edit(o: Object) -> None:
            o.setdefault("status", {})["executionHistories"] = out

        await converge(self.client, CRON, key.namespace, key.name, edit, read=obj)
        waits = [(t - now).total_seconds() for t in
                 (_utc(h.get("nextExecutionTime")) for h in out) if t is not None]
        return Result(requeue_after=max(0.05, min([MAX_WAIT, *waits])))

    @staticmethod
    def _record(history: dict[str, Any], rule: Mapping[str, Any], planned: datetime,
                now: datetime, outcome: Outcome) -> None:
        entry: dict[str, Any] = {"scheduleTime": _stamp(planned), "executionTime": _stamp(now)}
        if outcome.ok:
            entry.update(outcome.applied)
            field, limit = "successfulExecutions", int(rule.get("successfulHistoryLimit", 3))
        else:
            entry["message"] = outcome.message
            field, limit = "failedExecutions", int(rule.get("failedHistoryLimit", 3))
        history[field] = [*(history.get(field) or []), entry][-limit:]

    async def _execute(self, namespace: str, obj: Object, rule: Mapping[str, Any]
                       ) -> Outcome:
        ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
        kind, name = str(ref.get("kind")), str(ref.get("name"))
        target = self.inf[kind].cache.get(ObjectKey(namespace, name)) \
            if kind in self.inf else None
        if target is None:
            return Outcome(False, f"{kind} {name} not found", {})
        spec = target.get("spec") or {}
        if kind == "Deployment":
            replicas = int(rule["targetReplicas"])
            changes = {"replicas": replicas}
            applied = {"appliedReplicas": replicas}
        else:
            lo = rule.get("targetMinReplicas", spec.get("minReplicas", 1))
            hi = rule.get("targetMaxReplicas", spec.get("maxReplicas"))
            if hi is not None and int(lo) > int(hi):
                return Outcome(False, f"minReplicas {lo} would exceed maxReplicas {hi}", {})
            changes = {k: int(v) for k, v in (("minReplicas", rule.get("targetMinReplicas")),
                                              ("maxReplicas", rule.get("targetMaxReplicas")))
                       if v is not None}
            applied = {f"applied{k[0].upper()}{k[1:]}": v for k, v in changes.items()}

        def edit(o: Object) -> None:
            o.setdefault("spec", {}).update(changes)

        try:
            await converge(self.client, by_kind(kind), namespace, name, edit, read=target)
        except Exception as exc:  # refused by validation, or the API is away
            return Outcome(False, f"could not update {kind} {name}: {exc}", {})
        shown = ", ".join(f"{k}={v}" for k, v in changes.items())
        return Outcome(True, f"set {kind} {name} {shown}", applied)


def build(manager: ControllerManager) -> Controller:
    """Register the CronFederatedHPA controller with ``manager``."""
    informers = {k: manager.informer(by_kind(k))
                 for k in ("CronFederatedHPA", "FederatedHPA", "Deployment")}
    controller = Controller("cron-federated-hpa", CronFederatedHPAController(
        manager.client, informers), workers=1)
    controller.watches(informers["CronFederatedHPA"])
    manager.add(controller)
    return controller
