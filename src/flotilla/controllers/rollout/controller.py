"""The rollout controller: records revisions of every propagated Deployment and, where a
RolloutPolicy selects it, moves a change through the policy's waves.

It reconciles ResourceBindings (the state, the history and the pins are annotations on
the binding, see `revisions` and `state`), so it needs no kind of its own and survives a
restart of the control plane with nothing held in memory. The RolloutPolicy's status
mirrors the last rollout it governed, for ``flotilla get rolloutpolicies``.

Request figures come from the gateway's metrics: the URLs are the policy's annotation
``rollout.flotilla.io/metrics-url`` (comma-separated), else ``FLOTILLA_GATEWAY_METRICS``
in the server's environment (`flotilla up` sets it to its gateway's admin listener).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from flotilla.client.base import ConflictError, NotFoundError, Object, ResourceClient
from flotilla.client.mutate import mutate
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.placement.binder import binding_name
from flotilla.controllers.placement.render import services_selecting
from flotilla.controllers.rollout import revisions as rev
from flotilla.controllers.rollout import state as st
from flotilla.controllers.rollout.engine import Engine, Inputs, Report
from flotilla.controllers.rollout.gates import Snapshot, scrape
from flotilla.resources.kinds import by_kind
from flotilla.resources.labels import selector_from_dict
from flotilla.resources.models.rollout import RolloutPolicy
from flotilla.resources.wellknown import now_rfc3339

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
DEPLOYMENT = by_kind("Deployment")
POLICY = by_kind("RolloutPolicy")
METRICS_URL = "rollout.flotilla.io/metrics-url"
METRICS_ENV = "FLOTILLA_GATEWAY_METRICS"


def selects(policy: RolloutPolicy, template: Object) -> bool:
    sel = policy.spec.selector
    if sel.kind != template["kind"] or sel.api_version != template["apiVersion"]:
        return False
    if sel.name:
        return bool(sel.name == template["metadata"]["name"])
    if sel.label_selector is None:
        return True
    compiled = selector_from_dict(sel.label_selector.model_dump(by_alias=True,
                                                                exclude_none=True))
    return compiled.matches(template["metadata"].get("labels") or {})


def reports(binding: Object) -> dict[str, Report]:
    out = {}
    for item in (binding.get("status") or {}).get("aggregatedStatus") or []:
        s = item.get("status") or {}
        if "observedGeneration" not in s:
            continue
        out[str(item["clusterName"])] = Report(
            int(s.get("observedGeneration") or 0), int(s.get("replicas") or 0),
            int(s.get("updatedReplicas") or 0), int(s.get("readyReplicas") or 0))
    return out


class RolloutController:
    def __init__(self, client: ResourceClient, informers: dict[str, Informer],
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.inf = informers
        self.clock = clock
        self.events = EventRecorder(client, "rollout")

    def policy_for(self, template: Object) -> tuple[Object, RolloutPolicy] | None:
        namespace = template["metadata"].get("namespace") or "default"
        for obj in self.inf["RolloutPolicy"].cache.list(namespace=namespace):
            try:
                policy = RolloutPolicy.model_validate(obj)
            except ValidationError:
                continue  # the API validated it; a newer model may disagree: skip, not crash
            if selects(policy, template):
                return obj, policy
        return None

    def _scraper(self, policy_obj: Object) -> Callable[[], Awaitable[Snapshot]] | None:
        text = (policy_obj["metadata"].get("annotations") or {}).get(METRICS_URL) \
            or os.environ.get(METRICS_ENV, "")
        urls = [u.strip() for u in text.split(",") if u.strip()]
        return (lambda: scrape(urls)) if urls else None

    async def reconcile(self, key: ObjectKey) -> Result | None:
        cached = self.inf["ResourceBinding"].cache.get(key)
        if cached is None or cached["spec"]["resource"]["kind"] != "Deployment":
            return None
        ref = cached["spec"]["resource"]
        template = self.inf["Deployment"].cache.get(ObjectKey(ref.get("namespace") or "",
                                                              ref["name"]))
        if template is None or template["metadata"].get("deletionTimestamp"):
            return None
        try:
            binding = await self.client.get(BINDING, key.namespace, key.name)
        except NotFoundError:
            return None
        before = copy.deepcopy(binding)
        found = self.policy_for(template)
        limit = found[1].spec.history_limit if found else rev.DEFAULT_LIMIT
        history = rev.history(binding)
        keep = frozenset(rev.pins(binding).values())
        if (new := rev.next_history(history, template, now_rfc3339(), limit, keep)) \
                is not None:
            history = new
            rev.set_history(binding, history)
        result: Result | None = None
        if found is None:
            rev.set_pins(binding, None)
            st.store(binding, None)
            st.take_request(binding)
        else:
            result = await self._step(binding, template, history, *found)
        if binding["metadata"] != before["metadata"]:
            try:
                await self.client.update(binding)
            except ConflictError:
                return Result(requeue=True)
        return result

    async def _step(self, binding: Object, template: Object, history: list[rev.Revision],
                    policy_obj: Object, policy: RolloutPolicy) -> Result | None:
        namespace = binding["metadata"]["namespace"]
        targets = binding["spec"].get("clusters") or []
        placed = [t["name"] for t in targets if int(t.get("replicas") or 0) > 0]
        services = [f"{namespace}/{s['metadata']['name']}" for s in services_selecting(
            template, self.inf["Service"].cache.list(namespace=namespace))]
        inputs = Inputs(
            now=self.clock(), revisions=history, placed=placed,
            clusters={c["metadata"]["name"]: c for c in self.inf["Cluster"].cache.list()},
            spec=policy.spec, reports=reports(binding),
            desired={t["name"]: int(t.get("replicas") or 0) for t in targets},
            services=services, scrape=self._scraper(policy_obj))
        step = await Engine(inputs).step(st.load(binding), rev.pins(binding),
                                         st.take_request(binding))
        rev.set_pins(binding, step.pins)
        st.store(binding, step.state)
        for type_, reason, message in step.events:
            log.info("rollout %s/%s: %s %s", namespace, template["metadata"]["name"],
                     reason, message)
            await self.events.record(template, type_, reason, message)
        await self._policy_status(policy_obj, step.state)
        return Result(requeue_after=step.requeue_after) if step.requeue_after else None

    async def _policy_status(self, policy_obj: Object, state: st.RolloutState) -> None:
        wanted = {"phase": state.phase, "currentWave": state.wave,
                  "revision": state.revision, "stableRevision": state.stable,
                  "message": state.message}

        def change(obj: Object) -> bool:
            status = obj.setdefault("status", {})
            if all(status.get(k) == v for k, v in wanted.items()):
                return False
            status.update(wanted)
            return True

        meta = policy_obj["metadata"]
        await mutate(self.client, POLICY, meta.get("namespace") or "default", meta["name"],
                     change, status=True)


def build(manager: ControllerManager) -> Controller:
    kinds = ("ResourceBinding", "Deployment", "RolloutPolicy", "Cluster", "Service")
    informers = {k: manager.informer(by_kind(k)) for k in kinds}
    reconciler = RolloutController(manager.client, informers)
    controller = Controller("rollout", reconciler, workers=2)
    bindings = informers["ResourceBinding"]

    def binding_of(obj: Object) -> list[ObjectKey]:
        meta = obj["metadata"]
        return [ObjectKey(meta.get("namespace") or "default",
                          binding_name(obj["kind"], meta["name"]))]

    def deployment_bindings(obj: Object) -> list[ObjectKey]:
        ns = obj["metadata"].get("namespace") or "default"
        return [ObjectKey.of(b) for b in bindings.cache.list(namespace=ns)
                if b["spec"]["resource"]["kind"] == "Deployment"]

    controller.watches(bindings)
    controller.watches(informers["Deployment"], binding_of)
    controller.watches(informers["RolloutPolicy"], deployment_bindings)
    manager.add(controller)
    return controller
