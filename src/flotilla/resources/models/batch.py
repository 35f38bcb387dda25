"""``batch/v1`` Job, stored as the user wrote it (see `flotilla.resources.models.workloads`).

Only the fields Flotilla acts on are type-checked: the counts the scheduler divides
across clusters, the completion mode that decides whether indexes are split, the
failure budget (``backoffLimit``, ``podFailurePolicy`` on exit codes) and the deadlines
the local runtime enforces. Everything else reaches a Kubernetes member unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from flotilla.resources.cron import CronError, parse_schedule, zone
from flotilla.resources.models.common import Loose, NonNegInt, PosInt
from flotilla.resources.models.meta import KubeObject
from flotilla.resources.models.workloads import PodTemplate

__all__ = ["CronJob", "CronJobSpec", "Job", "JobSpec", "JobStatus", "PodFailurePolicy",
           "PodFailurePolicyRule"]


class ExitCodesRequirement(Loose):
    container_name: str | None = None
    operator: Literal["In", "NotIn"]
    values: list[int] = Field(min_length=1, max_length=255)

    @model_validator(mode="after")
    def _no_zero_with_in(self) -> ExitCodesRequirement:
        # Kubernetes refuses it too: exit code 0 is success, never a failure to act on.
        if self.operator == "In" and 0 in self.values:
            raise ValueError("exit code 0 cannot be used with operator In")
        return self


class PodFailurePolicyRule(Loose):
    action: Literal["FailJob", "Ignore", "Count", "FailIndex"]
    on_exit_codes: ExitCodesRequirement | None = None
    #: accepted (a real Kubernetes member honours it); the local runtime has no disruptions
    on_pod_conditions: list[dict[str, str]] = []

    @model_validator(mode="after")
    def _one_matcher(self) -> PodFailurePolicyRule:
        if (self.on_exit_codes is None) == (not self.on_pod_conditions):
            raise ValueError("a rule needs exactly one of onExitCodes or onPodConditions")
        return self


class PodFailurePolicy(Loose):
    rules: list[PodFailurePolicyRule] = Field(min_length=1, max_length=20)


class JobSpec(Loose):
    template: PodTemplate
    completions: NonNegInt | None = None
    parallelism: NonNegInt | None = None
    completion_mode: Literal["NonIndexed", "Indexed"] = "NonIndexed"
    backoff_limit: NonNegInt = 6
    active_deadline_seconds: PosInt | None = None
    ttl_seconds_after_finished: NonNegInt | None = None
    pod_failure_policy: PodFailurePolicy | None = None
    suspend: bool = False

    @model_validator(mode="after")
    def _job_rules(self) -> JobSpec:
        # Kubernetes' own validation: a Job's pods run to completion, and an Indexed Job
        # needs to know how many indexes exist.
        if self.template.spec.restart_policy == "Always":
            raise ValueError("template.spec.restartPolicy must be Never or OnFailure")
        if self.completion_mode == "Indexed" and self.completions is None:
            raise ValueError("completions is required when completionMode is Indexed")
        if self.pod_failure_policy is not None and self.template.spec.restart_policy != "Never":
            raise ValueError("podFailurePolicy requires template.spec.restartPolicy Never")
        return self


class JobStatus(Loose):
    active: NonNegInt = 0
    succeeded: NonNegInt = 0
    failed: NonNegInt = 0
    completed_indexes: str = ""


class Job(KubeObject):
    spec: JobSpec
    status: JobStatus = Field(default_factory=JobStatus)


#: A CronJob's Jobs are named ``<cronjob>-<minutes since the epoch>`` (as in
#: Kubernetes), and a Job name is a 63-character label: 52 leaves room for the time.
CRONJOB_NAME_MAX = 52


class JobTemplate(Loose):
    metadata: dict[str, Any] = {}
    spec: JobSpec


class CronJobSpec(Loose):
    schedule: str
    time_zone: str | None = None
    job_template: JobTemplate
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    starting_deadline_seconds: NonNegInt | None = None
    suspend: bool = False
    successful_jobs_history_limit: NonNegInt = 3
    failed_jobs_history_limit: NonNegInt = 1

    @model_validator(mode="after")
    def _schedule_parses(self) -> CronJobSpec:
        if "TZ=" in self.schedule:  # Kubernetes refuses CRON_TZ= / TZ= too
            raise ValueError("schedule: give the time zone in timeZone, not TZ=")
        try:
            parse_schedule(self.schedule)
            zone(self.time_zone)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return self


class CronJob(KubeObject):
    spec: CronJobSpec

    @model_validator(mode="after")
    def _name_leaves_room_for_the_time(self) -> CronJob:
        if len(self.metadata.name) > CRONJOB_NAME_MAX:
            raise ValueError(f"metadata.name: at most {CRONJOB_NAME_MAX} characters (its "
                             "Jobs append the schedule time)")
        return self
