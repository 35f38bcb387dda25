"""The CronJob controller: a CronJob's scheduled runs become Jobs in the control plane.

A run is an ordinary ``batch/v1`` Job, owned by its CronJob: the PropagationPolicy that
selects Jobs places it (divided over the analytics clusters, say), and its federated
status says when the run is over. The decisions are `plan.plan`'s; this module reads
the caches, writes what the plan says and looks again at the next scheduled time.

``clock`` is the time source (``time.time``); tests pass their own and wake the
controller after moving it, so a schedule "fires" without waiting a minute.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from flotilla.client.base import AlreadyExistsError, NotFoundError, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.cronjob.plan import Object, plan, reference
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.resources.kinds import by_kind
from flotilla.resources.views.cronjob import CronJobView, owner_name

log = logging.getLogger(__name__)
CRONJOB = by_kind("CronJob")
JOB = by_kind("Job")


def cronjob_of(job: Object) -> Iterable[ObjectKey]:
    name = owner_name(job)
    return (ObjectKey(job["metadata"].get("namespace") or "", name),) if name else ()


class CronJobController:
    def __init__(self, client: ResourceClient, cronjobs: Informer, jobs: Informer,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.cronjobs = cronjobs
        self.jobs = jobs
        self.clock = clock
        self.events = EventRecorder(client, "cronjob-controller")

    def _jobs_of(self, key: ObjectKey) -> list[Object]:
        return [j for j in self.jobs.cache.list(namespace=key.namespace)
                if owner_name(j) == key.name]

    async def reconcile(self, key: ObjectKey) -> Result | None:
        cron = self.cronjobs.cache.get(key)
        jobs = self._jobs_of(key)
        if cron is None or CronJobView.of(cron).meta.deleting:
            # No garbage collector in the control plane: a CronJob's runs go with it.
            for job in jobs:
                await self._delete(key.namespace, job["metadata"]["name"])
            return None
        step = plan(cron, jobs, self.clock())
        for name in step.delete:
            await self._delete(key.namespace, name)
        status = step.status
        if step.create is not None:
            name = step.create["metadata"]["name"]
            try:
                created = await self.client.create(step.create)
            except AlreadyExistsError:
                created = await self.client.get(JOB, key.namespace, name)
            status["active"] = [ref for ref in status["active"] if ref["name"] != name]
            status["active"].append(reference(created))
            log.info("cronjob %s/%s: started Job %s", key.namespace, key.name, name)
        if step.event is not None:
            await self.events.record(cron, *step.event)

        def set_status(obj: Object) -> None:
            obj["status"] = status

        await converge(self.client, CRONJOB, key.namespace, key.name, set_status, read=cron)
        return Result(requeue_after=step.requeue_after)

    async def _delete(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.client.delete(JOB, namespace, name)
            log.info("cronjob: deleted Job %s/%s", namespace, name)


def build(manager: ControllerManager, clock: Callable[[], float] = time.time) -> Controller:
    cronjobs, jobs = manager.informer(CRONJOB), manager.informer(JOB)
    reconciler = CronJobController(manager.client, cronjobs, jobs, clock)
    controller = Controller("cronjob", reconciler)
    controller.watches(cronjobs)
    controller.watches(jobs, cronjob_of)
    manager.add(controller)
    return controller
