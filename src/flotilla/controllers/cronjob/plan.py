"""What a CronJob should do now: the pure decision of the CronJob controller.

Kubernetes' rules (``cronjob_controllerv2``), with the clock passed in so tests drive it:

* the run that is due is the **latest** scheduled time after the last one started (or
  the CronJob's creation), at or before now: missed runs are not caught up one by one;
* ``startingDeadlineSeconds``: a run that is due but older than that is missed
  (``MissSchedule``), and nothing starts until the next scheduled time;
* ``concurrencyPolicy``: ``Allow`` starts it beside running Jobs, ``Forbid`` does not
  start it while one runs (the schedule time stays unmet, so it starts once the running
  Job finishes, within the deadline), ``Replace`` deletes the running Jobs first;
* ``suspend`` starts nothing (history is still pruned);
* finished Jobs beyond ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit`` are
  deleted, oldest first.

A Job is finished when its *federated* status says so (`JobView.finished`): a Job
divided over clusters is one run, however many clusters run a share of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flotilla.client.frozen import thaw
from flotilla.controllers.events import EventType
from flotilla.resources.cron import CronError, parse_schedule, zone
from flotilla.resources.views import CronJobView, JobView
from flotilla.resources.views.cronjob import ANNOTATION_SCHEDULED
from flotilla.resources.wellknown import parse_rfc3339, rfc3339_at

Object = dict[str, Any]
#: The longest a CronJob waits between two looks when nothing is due (a schedule years
#: away, an impossible day): its Jobs' changes wake it anyway.
MAX_WAIT = 3600.0


@dataclass(frozen=True, slots=True)
class Plan:
    #: the Job to create now (None: nothing starts)
    create: Object | None = None
    #: names of Jobs to delete: running ones a ``Replace`` ends, then pruned history
    delete: tuple[str, ...] = ()
    #: the CronJob's ``status`` after this step
    status: Object = field(default_factory=dict)
    #: seconds until the next scheduled time (when to look again)
    requeue_after: float = MAX_WAIT
    #: an Event to record: (type, reason, message); None when there is nothing to say
    event: tuple[EventType, str, str] | None = None


def _time(value: str) -> float | None:
    try:
        return parse_rfc3339(value) if value else None
    except ValueError:
        return None


def _started(job: Mapping[str, Any]) -> float:
    """When a run was scheduled (its annotation), else when its Job was created."""
    meta = job.get("metadata") or {}
    for value in ((meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED),
                  meta.get("creationTimestamp")):
        if isinstance(value, str) and (at := _time(value)) is not None:
            return at
    return 0.0


def reference(job: Mapping[str, Any]) -> Object:
    meta = job.get("metadata") or {}
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""), "uid": meta.get("uid", "")}


def job_for(cron: CronJobView, scheduled: datetime) -> Object:
    """The Job of the run scheduled at ``scheduled``: the template's metadata and spec,
    owned by the CronJob, named by `CronJobView.job_name`."""
    template = thaw(cron.job_template)
    meta = template.get("metadata") or {}
    annotations = {**(meta.get("annotations") or {}),
                   ANNOTATION_SCHEDULED: scheduled.isoformat()}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": cron.job_name(scheduled.timestamp()),
            "namespace": cron.meta.namespace or "default",
            "labels": dict(meta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                 "name": cron.meta.name, "uid": cron.meta.uid,
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": template.get("spec") or {},
    }


def history_to_prune(cron: CronJobView, jobs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Finished Jobs beyond the history limits, oldest first."""
    out: list[str] = []
    for verdict, limit in (("Complete", cron.successful_limit), ("Failed", cron.failed_limit)):
        done = sorted((j for j in jobs if JobView.of(j).finished == verdict), key=_started)
        out += [str(j["metadata"]["name"]) for j in done[:max(0, len(done) - limit)]]
    return out


def plan(cron_obj: Mapping[str, Any], jobs: Iterable[Mapping[str, Any]], now: float) -> Plan:
    """The step for a CronJob given its own Jobs (`CronJobView.owns`) at time ``now``."""
    cron = CronJobView.of(cron_obj)
    jobs = [j for j in jobs if cron.owns(j)]
    active = sorted((j for j in jobs if not JobView.of(j).finished), key=_started)
    status: Object = {"active": [reference(j) for j in active]}
    if cron.last_schedule:
        status["lastScheduleTime"] = cron.last_schedule
    successes = [at for j in jobs if JobView.of(j).finished == "Complete"
                 and (at := _time(str((j.get("status") or {}).get("completionTime") or "")))]
    previous = _time(cron.last_successful)
    if successes or previous is not None:
        status["lastSuccessfulTime"] = rfc3339_at(max([*successes, *(
            [previous] if previous is not None else [])]))
    if not status["active"]:
        status.pop("active")
    prune = history_to_prune(cron, jobs)
    try:
        schedule, tz = parse_schedule(cron.schedule), zone(cron.time_zone or None)
    except CronError as exc:  # the API refuses these; a stored one stays inert
        return Plan(delete=tuple(prune), status=status,
                    event=("Warning", "InvalidSchedule", str(exc)))
    moment = datetime.fromtimestamp(now, tz)
    upcoming = schedule.next_after(moment)
    wait = min(MAX_WAIT, upcoming.timestamp() - now) if upcoming else MAX_WAIT
    wait = max(wait, 0.05)
    if cron.suspended:
        return Plan(delete=tuple(prune), status=status, requeue_after=wait)
    since = _time(cron.last_schedule) or _time(cron.meta.creation_timestamp) or now
    due = schedule.last_at_or_before(moment)
    if due is None or due.timestamp() <= since:
        return Plan(delete=tuple(prune), status=status, requeue_after=wait)
    late = now - due.timestamp()
    if cron.starting_deadline is not None and late > cron.starting_deadline:
        return Plan(delete=tuple(prune), status=status, requeue_after=wait, event=(
            "Warning", "MissSchedule", f"missed the run of {due.isoformat()}: "
            f"{late:.0f}s late, startingDeadlineSeconds is {cron.starting_deadline}"))
    name = cron.job_name(due.timestamp())
    if any(j["metadata"]["name"] == name for j in jobs):  # created; the status lagged
        status["lastScheduleTime"] = rfc3339_at(due.timestamp())
        return Plan(delete=tuple(prune), status=status, requeue_after=wait)
    replaced: list[str] = []
    if active and cron.concurrency == "Forbid":
        return Plan(delete=tuple(prune), status=status, requeue_after=wait, event=(
            "Normal", "JobAlreadyActive", "not starting a Job: the previous run is still "
            "active and concurrencyPolicy is Forbid"))
    if active and cron.concurrency == "Replace":
        replaced = [str(j["metadata"]["name"]) for j in active]
        status.pop("active", None)
    job = job_for(cron, due)
    status["active"] = [*status.get("active", []), reference(job)]
    status["lastScheduleTime"] = rfc3339_at(due.timestamp())
    return Plan(create=job, delete=tuple(replaced + prune), status=status,
                requeue_after=wait,
                event=("Normal", "SuccessfulCreate", f"created Job {name}"))
