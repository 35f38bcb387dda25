"""The rollout controller: records revisions of every propagated Deployment and, where a
RolloutPolicy selects it, moves a change through the policy's waves.

It reconciles ResourceBindings (the state, the history and the pins are annotations on
the binding, in the format of `flotilla.resources.rollout_state`), so it needs no kind
of its own and survives a restart of the control plane with nothing held in memory.
The RolloutPolicy's status mirrors the last rollout it governed, for ``flotilla get
rolloutpolicies``.

Request figures come from the gateway's metrics: the URLs are the policy's annotation
``rollout.flotilla.io/metrics-url`` (comma-separated), else ``FLOTILLA_GATEWAY_METRICS``
in the server's environment (`flotilla up` sets it to its gateway's admin listener).
They are scraped here, before the engine's step, only when the step may judge a wave
(`engine.wants_metrics`): the step itself does no I/O.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from flotilla.client.base import ConflictError, NotFoundError, Object, ResourceClient
from flotilla.client.desired import converge, write_desired
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.placement.render import services_selecting
from flotilla.controllers.rollout import revisions as rev
from flotilla.controllers.rollout.engine import Inputs, Report, step, wants_metrics
from flotilla.controllers.rollout.gates import Snapshot, scrape
from flotilla.resources import rollout_state as st
from flotilla.resources.kinds import by_kind
from flotilla.resources.labels import selector_from_dict
from flotilla.resources.models.rollout import RolloutPolicy
from flotilla.resources.naming import binding_name
from flotilla.resources.views import ClusterView, Meta, ResourceBindingView
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
    """What each member reported of the workload, once it reported a generation."""
    return {i.cluster: Report(i.observed_generation, i.replicas, i.updated_replicas,
                              i.ready_replicas)
            for i in ResourceBindingView.of(binding).aggregated
            if i.observed_generation is not None}


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

    async def _metrics(self, policy_obj: Object) -> tuple[Snapshot | None, str]:
        """The gateways' counters now, or None and why not (said in the rollout's
        message; the step waits and asks again)."""
        text = (policy_obj["metadata"].get("annotations") or {}).get(METRICS_URL) \
            or os.environ.get(METRICS_ENV, "")
        urls = [u.strip() for u in text.split(",") if u.strip()]
        if not urls:
            return None, f"no gateway metrics configured ({METRICS_ENV} or the " \
                f"policy's {METRICS_URL} annotation)"
        try:
            return await scrape(urls), ""
        except (httpx.HTTPError, ValueError) as exc:
            return None, str(exc) or type(exc).__name__

    async def reconcile(self, key: ObjectKey) -> Result | None:
        cached = self.inf["ResourceBinding"].cache.get(key)
        ref = ResourceBindingView.of(cached).resource
        if cached is None or not ref.has_replicas:
            return None
        template = self.inf["Deployment"].cache.get(ObjectKey(ref.namespace, ref.name))
        if template is None or Meta.of(template.get("metadata")).deleting:
            return None
        try:
            binding = await self.client.get(BINDING, key.namespace, key.name)
        except NotFoundError:
            return None
        before = copy.deepcopy(binding)
        found = self.policy_for(template)
        limit = found[1].spec.history_limit if found else rev.DEFAULT_LIMIT
        history = st.history(binding)
        state = st.load(binding)
        # the stable revision is where a failure goes back to: it must stay in history
        keep = frozenset(st.pins(binding).values()) | (
            {state.stable} if state is not None else set())
        if (new := rev.next_history(history, template, now_rfc3339(), limit, keep)) \
                is not None:
            history = new
            st.set_history(binding, history)
        result: Result | None = None
        if found is None:
            st.set_pins(binding, None)
            st.store(binding, None)
            st.take_request(binding)
        else:
            result = await self._step(binding, template, history, state, *found)
        try:
            await write_desired(self.client, before, binding)
        except ConflictError:
            return Result(requeue=True)
        return result

    async def _step(self, binding: Object, template: Object, history: list[st.Revision],
                    state: st.RolloutState | None, policy_obj: Object,
                    policy: RolloutPolicy) -> Result | None:
        view = ResourceBindingView.of(binding)
        namespace = view.namespace
        targets = view.targets
        placed = [name for name, replicas in targets.items() if replicas > 0]
        services = [f"{namespace}/{s['metadata']['name']}" for s in services_selecting(
            template, self.inf["Service"].cache.list(namespace=namespace))]
        metrics, problem = await self._metrics(policy_obj) \
            if wants_metrics(state, policy.spec) else (None, "")
        inputs = Inputs(
            now=self.clock(), revisions=history, placed=placed,
            clusters={ClusterView.of(c).name: c for c in self.inf["Cluster"].cache.list()},
            spec=policy.spec, reports=reports(binding),
            desired=dict(targets),
            services=services, metrics=metrics, metrics_problem=problem)
        done = step(inputs, state, st.pins(binding), st.take_request(binding))
        st.set_pins(binding, done.pins)
        st.store(binding, done.state)
        for type_, reason, message in done.events:
            log.info("rollout %s/%s: %s %s", namespace, template["metadata"]["name"],
                     reason, message)
            await self.events.record(template, type_, reason, message)
        await self._policy_status(policy_obj, done.state)
        return Result(requeue_after=done.requeue_after) if done.requeue_after else None

    async def _policy_status(self, policy_obj: Object, state: st.RolloutState) -> None:
        wanted = {"phase": state.phase, "currentWave": state.wave,
                  "revision": state.revision, "stableRevision": state.stable,
                  "message": state.message}

        def change(obj: Object) -> None:
            obj.setdefault("status", {}).update(wanted)

        meta = Meta.of(policy_obj.get("metadata"))
        await converge(self.client, POLICY, meta.namespace or "default", meta.name, change,
                       read=policy_obj)


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
                if ResourceBindingView.of(b).has_replicas]

    controller.watches(bindings)
    controller.watches(informers["Deployment"], binding_of)
    controller.watches(informers["RolloutPolicy"], deployment_bindings)
    manager.add(controller)
    return controller
