"""The CronJob controller against a real API server, on a clock the test moves: runs
start as owned Jobs at each scheduled minute, successfulJobsHistoryLimit prunes the
oldest, Forbid holds a run until the previous one ends (woken by the Job's change),
and a deleted CronJob takes its Jobs with it. No controller but this one runs, so the
test plays the status aggregator: it marks a Job Complete by writing its status."""

from __future__ import annotations

import time
from typing import Any

from flotilla.client.base import NotFoundError
from flotilla.client.http import HttpClient
from flotilla.controllers.cronjob import controller as cronjob
from flotilla.controllers.runtime import ControllerManager, ObjectKey
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import parse_rfc3339, rfc3339_at
from tests.helpers import wait_for

CRONJOB, JOB, EVENT = by_kind("CronJob"), by_kind("Job"), by_kind("Event")
NS = "cron"


class Clock:
    """The controller's time: moves only when the test says. `since` sets it to an
    object's creation (the server stamps it with the real time), so that a minute that
    turns between reading the clock and creating the CronJob cannot make the first
    "next minute" one that is not after the creation."""

    def __init__(self) -> None:
        self.now = time.time()

    def since(self, obj: dict[str, Any]) -> None:
        self.now = parse_rfc3339(obj["metadata"]["creationTimestamp"])

    def __call__(self) -> float:
        return self.now

    def next_minute(self) -> float:
        """Move to one second past the next whole minute; returns that minute."""
        minute = (self.now // 60 + 1) * 60
        self.now = minute + 1
        return minute


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"schedule": "* * * * *", **spec, "jobTemplate": {"spec": {
                "template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "r", "image": "python:3", "command": ["true"]}]}}}}}}


async def job_names(client: HttpClient, cron: str) -> list[str]:
    items = (await client.list(JOB, NS)).items
    return sorted(j["metadata"]["name"] for j in items
                  if any(r.get("name") == cron for r in
                         j["metadata"].get("ownerReferences") or []))


async def finish(client: HttpClient, name: str, verdict: str = "Complete") -> None:
    job = await client.get(JOB, NS, name)
    job["status"] = {"conditions": [{"type": verdict, "status": "True",
                                     "lastTransitionTime": rfc3339_at(time.time())}],
                     "completionTime": rfc3339_at(time.time())}
    await client.update_status(job)


async def test_runs_start_on_schedule_and_history_is_kept(client: HttpClient) -> None:
    clock = Clock()
    manager = ControllerManager(client, resync_period=30)
    ctrl = cronjob.build(manager, clock=clock)
    key = ObjectKey(NS, "report")
    async with manager:
        clock.since(await client.create(manifest("report", successfulJobsHistoryLimit=2)))
        async def looked() -> bool:
            return ctrl.reconciled > 0
        await wait_for(looked, what="first look")
        assert await job_names(client, "report") == [], "nothing before the first minute"
        started = []
        for _ in range(4):
            minute = clock.next_minute()
            ctrl.queue.add(key)  # what requeue_after does at the real minute
            name = f"report-{int(minute // 60)}"
            started.append(name)
            await wait_for(lambda n=name: _has(client, n), what=f"{name} started")
            await finish(client, name)
        want = started[-2:]
        await wait_for(lambda: _names_are(client, "report", want), what="history of 2")
        status = (await client.get(CRONJOB, NS, "report"))["status"]
        assert status["lastScheduleTime"] == rfc3339_at(minute)
        assert "lastSuccessfulTime" in status
        job = await client.get(JOB, NS, started[-1])
        assert job["metadata"]["ownerReferences"][0]["uid"] == \
            (await client.get(CRONJOB, NS, "report"))["metadata"]["uid"]
    assert ctrl.failed == 0


async def test_forbid_holds_a_run_until_the_previous_one_ends(client: HttpClient) -> None:
    clock = Clock()
    manager = ControllerManager(client, resync_period=30)
    ctrl = cronjob.build(manager, clock=clock)
    key = ObjectKey(NS, "nightly")
    async with manager:
        clock.since(await client.create(manifest("nightly", concurrencyPolicy="Forbid")))
        first = clock.next_minute()
        ctrl.queue.add(key)
        first_name = f"nightly-{int(first // 60)}"
        await wait_for(lambda: _has(client, first_name), what="first run")
        clock.next_minute()
        ctrl.queue.add(key)
        await wait_for(lambda: _event(client, "nightly", "JobAlreadyActive"), what="held")
        assert await job_names(client, "nightly") == [first_name]
        await finish(client, first_name)  # the Job's change wakes the controller
        await wait_for(lambda: _count(client, "nightly", 2), what="the held run starts")
        await client.delete(CRONJOB, NS, "nightly")
        await wait_for(lambda: _count(client, "nightly", 0), what="its Jobs go with it")
    assert ctrl.failed == 0


async def _has(client: HttpClient, name: str) -> bool:
    try:
        await client.get(JOB, NS, name)
    except NotFoundError:
        return False
    return True


async def _names_are(client: HttpClient, cron: str, want: list[str]) -> bool:
    return await job_names(client, cron) == sorted(want)


async def _count(client: HttpClient, cron: str, n: int) -> bool:
    return len(await job_names(client, cron)) == n


async def _event(client: HttpClient, name: str, reason: str) -> bool:
    return any(e["involvedObject"]["name"] == name and e["reason"] == reason
               for e in (await client.list(EVENT, NS)).items)
