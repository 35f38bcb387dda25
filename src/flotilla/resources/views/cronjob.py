"""A ``batch/v1`` CronJob as the CronJob controller reads it (docs/batch.md), and the
one rule about its Jobs: which Jobs are its own (``ownerReferences`` naming it by uid,
as Kubernetes' controller decides), and the name a scheduled run's Job gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.resources.views.fields import (
    Meta,
    empty,
    entries,
    frozen_json,
    integer,
    mapping,
    text,
)

#: The annotation Kubernetes (1.28+) writes on a CronJob's Job: its scheduled time.
ANNOTATION_SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


@dataclass(frozen=True, slots=True)
class CronJobView:
    meta: Meta = field(default_factory=Meta)
    schedule: str = ""
    time_zone: str = ""
    #: "Allow" | "Forbid" | "Replace"
    concurrency: str = "Allow"
    starting_deadline: int | None = None
    suspended: bool = False
    successful_limit: int = 3
    failed_limit: int = 1
    #: ``spec.jobTemplate`` as stored (``metadata`` and ``spec`` of each Job)
    job_template: Mapping[str, Any] = field(default_factory=empty, hash=False)
    #: ``status.lastScheduleTime`` / ``lastSuccessfulTime`` as stored ("" when unset)
    last_schedule: str = ""
    last_successful: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> CronJobView:
        obj = mapping(obj)
        spec, status = mapping(obj.get("spec")), mapping(obj.get("status"))
        deadline = spec.get("startingDeadlineSeconds")
        return cls(Meta.of(obj.get("metadata")), text(spec.get("schedule")),
                   text(spec.get("timeZone")),
                   text(spec.get("concurrencyPolicy")) or "Allow",
                   integer(deadline) if deadline is not None else None,
                   spec.get("suspend") is True,
                   integer(spec.get("successfulJobsHistoryLimit"), 3),
                   integer(spec.get("failedJobsHistoryLimit"), 1),
                   frozen_json(spec.get("jobTemplate")),
                   text(status.get("lastScheduleTime")),
                   text(status.get("lastSuccessfulTime")))

    def owns(self, job: Mapping[str, Any]) -> bool:
        """Whether ``job`` is one of this CronJob's runs (by the owner's uid, so a
        CronJob deleted and created again under the same name does not adopt the old
        one's Jobs)."""
        return any(ref.get("kind") == "CronJob" and ref.get("name") == self.meta.name
                   and ref.get("uid") == self.meta.uid
                   for ref in entries(mapping(job.get("metadata")).get("ownerReferences")))

    def job_name(self, scheduled: float) -> str:
        """``<name>-<minutes since the epoch>``, Kubernetes' name: one Job per scheduled
        minute, so a run created twice (a retried reconcile) is refused the second time."""
        return f"{self.meta.name}-{int(scheduled // 60)}"


def owner_name(job: Mapping[str, Any]) -> str | None:
    """The CronJob a Job belongs to (by name), for mapping a Job change to its key."""
    for ref in entries(mapping(job.get("metadata")).get("ownerReferences")):
        if ref.get("kind") == "CronJob" and ref.get("apiVersion") == "batch/v1":
            return text(ref.get("name")) or None
    return None
