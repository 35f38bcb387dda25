"""The CronJob controller's decisions (`controllers.cronjob.plan`) on a driven clock:
which run is due, Allow / Forbid / Replace, suspend, startingDeadlineSeconds, the
history limits, and the Jobs it creates (owned, named by the scheduled minute)."""

from __future__ import annotations

from typing import Any

from flotilla.controllers.cronjob.plan import plan
from flotilla.resources.views.cronjob import ANNOTATION_SCHEDULED
from flotilla.resources.wellknown import parse_rfc3339, rfc3339_at

T0 = parse_rfc3339("2026-12-04T18:00:00Z")  # a whole minute
UID = "uid-report"


def cronjob(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "default", "uid": UID,
                         "creationTimestamp": rfc3339_at(T0 - 30)},
            "spec": {"schedule": "* * * * *", "jobTemplate": {
                "metadata": {"labels": {"app": "report"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "r", "image": "python:3"}]}}}}, **spec},
            "status": status}


def job(minute: int, verdict: str = "", uid: str = UID) -> dict[str, Any]:
    scheduled = T0 + 60 * minute
    status: dict[str, Any] = {}
    if verdict:
        status = {"conditions": [{"type": verdict, "status": "True"}]}
        if verdict == "Complete":
            status["completionTime"] = rfc3339_at(scheduled + 20)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"report-{int(scheduled // 60)}", "namespace": "default",
                         "uid": f"job-{minute}",
                         "annotations": {ANNOTATION_SCHEDULED: rfc3339_at(scheduled)},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                              "name": "report", "uid": uid}]},
            "status": status}


def test_the_first_run_starts_at_the_first_scheduled_minute_after_creation() -> None:
    before = plan(cronjob(), [], T0 - 1)
    assert before.create is None
    assert abs(before.requeue_after - 1) < 1e-6  # looks again at 18:00:00
    step = plan(cronjob(), [], T0 + 0.5)
    assert step.create is not None
    meta = step.create["metadata"]
    assert meta["name"] == f"report-{int(T0 // 60)}"
    assert meta["labels"] == {"app": "report"}
    assert meta["ownerReferences"][0]["uid"] == UID
    assert meta["annotations"][ANNOTATION_SCHEDULED].startswith("2026-12-04T18:00:00")
    assert step.create["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert step.status["lastScheduleTime"] == rfc3339_at(T0)
    assert [a["name"] for a in step.status["active"]] == [meta["name"]]
    assert abs(step.requeue_after - 59.5) < 1e-6


def test_a_run_already_started_is_not_started_again() -> None:
    cron = cronjob(status={"lastScheduleTime": rfc3339_at(T0)})
    assert plan(cron, [job(0)], T0 + 30).create is None
    # the status lagged behind the create: the Job's name says it ran
    assert plan(cronjob(), [job(0)], T0 + 30).create is None


def test_missed_runs_start_the_latest_one_only() -> None:
    cron = cronjob(status={"lastScheduleTime": rfc3339_at(T0)})
    step = plan(cron, [job(0, "Complete")], T0 + 5 * 60 + 10)
    assert step.create is not None
    assert step.create["metadata"]["name"] == f"report-{int(T0 // 60) + 5}"


def test_starting_deadline_misses_a_late_run() -> None:
    cron = cronjob(startingDeadlineSeconds=5, status={"lastScheduleTime": rfc3339_at(T0)})
    late = plan(cron, [], T0 + 60 + 10)
    assert late.create is None
    assert late.event is not None
    assert late.event[1] == "MissSchedule"
    assert plan(cron, [], T0 + 60 + 4).create is not None


def test_forbid_waits_for_the_running_job_then_starts_late() -> None:
    cron = cronjob(concurrencyPolicy="Forbid", status={"lastScheduleTime": rfc3339_at(T0)})
    blocked = plan(cron, [job(0)], T0 + 61)
    assert blocked.create is None
    assert blocked.event is not None
    assert blocked.event[1] == "JobAlreadyActive"
    after = plan(cron, [job(0, "Complete")], T0 + 80)
    assert after.create is not None, "the unmet run starts once the previous one ended"


def test_allow_runs_beside_and_replace_deletes_the_running_job() -> None:
    allow = plan(cronjob(status={"lastScheduleTime": rfc3339_at(T0)}), [job(0)], T0 + 61)
    assert allow.create is not None
    assert allow.delete == ()
    assert len(allow.status["active"]) == 2
    replace = plan(cronjob(concurrencyPolicy="Replace",
                           status={"lastScheduleTime": rfc3339_at(T0)}), [job(0)], T0 + 61)
    assert replace.create is not None
    assert replace.delete == (job(0)["metadata"]["name"],)
    assert [a["name"] for a in replace.status["active"]] == \
        [replace.create["metadata"]["name"]]


def test_suspend_starts_nothing_but_prunes_history() -> None:
    jobs = [job(m, "Complete") for m in range(5)]
    step = plan(cronjob(suspend=True, successfulJobsHistoryLimit=2), jobs, T0 + 6 * 60)
    assert step.create is None
    assert step.delete == tuple(j["metadata"]["name"] for j in jobs[:3])


def test_history_limits_keep_the_newest_of_each_verdict() -> None:
    jobs = [job(0, "Complete"), job(1, "Failed"), job(2, "Complete"), job(3, "Failed"),
            job(4, "Complete"), job(5)]
    cron = cronjob(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1,
                   status={"lastScheduleTime": rfc3339_at(T0 + 300)})
    step = plan(cron, jobs, T0 + 330)
    names = [j["metadata"]["name"] for j in jobs]
    assert sorted(step.delete) == sorted([names[0], names[2], names[1]])
    assert [a["name"] for a in step.status["active"]] == [names[5]]
    assert step.status["lastSuccessfulTime"] == rfc3339_at(T0 + 4 * 60 + 20)


def test_jobs_of_another_owner_are_not_its_own() -> None:
    stranger = job(0, "Complete", uid="uid-of-an-older-report")
    step = plan(cronjob(successfulJobsHistoryLimit=0), [stranger], T0 + 30)
    assert step.delete == ()
    assert step.create is not None  # the stranger's name does not count as this run


def test_a_time_zone_schedules_in_its_own_day() -> None:
    cron = cronjob(schedule="0 9 * * *", timeZone="Asia/Tokyo")
    cron["metadata"]["creationTimestamp"] = "2026-12-04T23:00:00Z"
    assert plan(cron, [], parse_rfc3339("2026-12-04T23:59:00Z")).create is None
    step = plan(cron, [], parse_rfc3339("2026-12-05T00:00:30Z"))  # 09:00 in Tokyo
    assert step.create is not None
