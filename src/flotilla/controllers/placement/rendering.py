"""The renderer: one Work per target cluster of each scheduled ResourceBinding.

Works live in the cluster's execution namespace (``flotilla-es-<cluster>``) and carry
the label ``flotilla.io/binding=<namespace>.<binding>``, so that everything one binding
produced can be found, updated and removed with one selector. A binding that is gone,
or a cluster no longer in ``spec.clusters``, loses its Works — and so, on the member,
its pods.
"""

from __future__ import annotations

import contextlib
import copy
import logging

from flotilla.client.base import NotFoundError, Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.permanent import PermanentError
from flotilla.controllers.placement.binder import TEMPLATE_KINDS
from flotilla.controllers.placement.jobs import job_per_cluster, previous_share
from flotilla.controllers.placement.overrides import OverrideError
from flotilla.controllers.placement.render import (
    by_name,
    referenced_dependencies,
    render_for_cluster,
    services_selecting,
)
from flotilla.controllers.rollout.revisions import pinned_template
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import LABEL_BINDING, ResourceBindingView, WorkView
from flotilla.resources.wellknown import execution_namespace
from flotilla.scheduler import PlacementError, compile_cluster, compile_placement

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
WORK = by_kind("Work")
CLUSTER = by_kind("Cluster")
OP = by_kind("OverridePolicy")
COP = by_kind("ClusterOverridePolicy")


def binding_of_work(work: Object) -> ObjectKey | None:
    found = WorkView.of(work).binding
    return ObjectKey(*found) if found is not None else None


class Renderer:
    def __init__(self, client: ResourceClient, informers: dict[str, Informer]) -> None:
        self.client = client
        self.inf = informers
        self.events = EventRecorder(client, "renderer")

    def _template(self, binding: ResourceBindingView) -> Object | None:
        ref = binding.resource
        informer = self.inf.get(ref.kind)
        if informer is None:
            return None
        return informer.cache.get(ObjectKey(ref.namespace, ref.name))

    def _companions(self, template: Object, namespace: str) -> list[Object]:
        """Dependencies (ConfigMaps, Secrets) and the Services that select the workload
        without being bound themselves."""
        if template["kind"] not in ("Deployment", "Job"):
            return []
        out: list[Object] = []
        for kind, name in sorted(referenced_dependencies(template)):
            dep = self.inf[kind].cache.get(ObjectKey(namespace, name))
            if dep is not None:
                out.append(dep)
        bound = {v.resource.name for v in map(
                 ResourceBindingView.of, self.inf["ResourceBinding"].cache.list(
                     namespace=namespace)) if v.resource.kind == "Service"}
        services = [s for s in self.inf["Service"].cache.list(namespace=namespace)
                    if s["metadata"]["name"] not in bound]
        if template["kind"] == "Deployment":
            out += services_selecting(template, services)
        return out

    def _jobs(self, view: ResourceBindingView, template: Object) -> dict[str, Object]:
        """Each target's Job (`placement.jobs`), given the shares their Works hold now."""
        previous: dict[str, frozenset[int]] = {}
        for work in self.inf["Work"].cache.list(f"{LABEL_BINDING}={view.work_label}"):
            cluster = WorkView.of(work).cluster
            for m in ((work.get("spec") or {}).get("workload") or {}).get("manifests") or []:
                if m.get("kind") == "Job" and (share := previous_share(m)) is not None:
                    previous[cluster] = share
        duplicated = compile_placement(view.placement).scheduling_type == "Duplicated"
        return job_per_cluster(template, [(t.name, t.replicas) for t in view.clusters],
                               previous, duplicated=duplicated)

    async def reconcile(self, key: ObjectKey) -> Result | None:
        binding = self.inf["ResourceBinding"].cache.get(key)
        view = ResourceBindingView.of(binding)
        label = f"{key.namespace}.{key.name}"
        wanted: dict[str, Object] = {}
        if binding is not None and not view.meta.deleting:
            template = self._template(view)
            if template is not None:
                try:
                    wanted = self._works(binding, view, template)
                except (OverrideError, PlacementError) as exc:
                    # Keep what runs; the policy (or cluster) must be fixed first.
                    raise PermanentError("OverrideFailed", str(exc)) from None
        # A cluster being evicted keeps its Work, as it is, until the failover controller
        # finishes the graceful-eviction task (replacements ready elsewhere, or timeout)
        # or marks it purgeMode Immediately (old replicas released, cluster still avoided).
        evicting = {t.from_cluster for t in view.holding_tasks}
        existing = self.inf["Work"].cache.list(f"{LABEL_BINDING}={label}")
        for old in map(WorkView.of, existing):
            if old.cluster not in wanted and old.cluster not in evicting:
                with contextlib.suppress(NotFoundError):
                    await self.client.delete(WORK, old.meta.namespace, old.meta.name)
        for _cluster, work in sorted(wanted.items()):
            await self._upsert(work)
        return None

    def _works(self, binding: Object, view: ResourceBindingView, template: Object
               ) -> dict[str, Object]:
        namespace = view.namespace
        clusters = by_name(self.inf["Cluster"].cache.list())
        overrides = [*self.inf["ClusterOverridePolicy"].cache.list(),
                     *self.inf["OverridePolicy"].cache.list(namespace=namespace)]
        companions = self._companions(template, namespace)
        out: dict[str, Object] = {}
        is_workload = template["kind"] == "Deployment"
        jobs = self._jobs(view, template) if template["kind"] == "Job" else None
        for target in view.clusters:
            name, replicas = target.name, target.replicas
            cluster = clusters.get(name)
            if cluster is None or (is_workload and replicas == 0) or (
                    jobs is not None and name not in jobs):
                continue
            # A RolloutPolicy may hold a cluster on an older revision's pod template.
            source = jobs[name] if jobs is not None else pinned_template(binding, template,
                                                                          name)
            rendered = render_for_cluster(source,
                                          replicas if is_workload else None,
                                          compile_cluster(cluster), overrides, companions)
            applied = [f"{a.policy}[{a.rule}]:{'+'.join(a.overriders)}"
                       for a in rendered.applied]
            out[name] = {
                "apiVersion": WORK.api_version, "kind": "Work",
                "metadata": {
                    "name": view.work_label, "namespace": execution_namespace(name),
                    "labels": {LABEL_BINDING: view.work_label},
                    "annotations": {"flotilla.io/overrides": ",".join(applied)}
                    if applied else {},
                },
                "spec": {"workload": {"manifests": rendered.manifests}},
            }
        return out

    async def _upsert(self, work: Object) -> None:
        meta = work["metadata"]

        def change(current: Object) -> None:
            cur_meta = current["metadata"]
            current["spec"] = copy.deepcopy(work["spec"])
            cur_meta["labels"] = dict(meta["labels"])
            cur_meta["annotations"] = dict(meta["annotations"])

        cached = self.inf["Work"].cache.get(ObjectKey(meta["namespace"], meta["name"]))
        await converge(self.client, WORK, meta["namespace"], meta["name"], change,
                       read=cached, create=lambda: copy.deepcopy(work))


def build(manager: ControllerManager) -> Controller:
    kinds = [*TEMPLATE_KINDS, BINDING, WORK, CLUSTER, OP, COP]
    informers = {k.kind: manager.informer(k) for k in kinds}
    renderer = Renderer(manager.client, informers)
    controller = Controller("renderer", renderer, workers=2)
    bindings = informers["ResourceBinding"]

    def all_bindings(_obj: Object) -> list[ObjectKey]:
        return [ObjectKey.of(b) for b in bindings.cache.list()]

    def bindings_in_namespace(obj: Object) -> list[ObjectKey]:
        ns = obj["metadata"].get("namespace") or ""
        return [ObjectKey.of(b) for b in bindings.cache.list(namespace=ns)]

    controller.watches(bindings)
    controller.watches(informers["Work"], lambda w: [k] if (k := binding_of_work(w)) else [])
    for kind in TEMPLATE_KINDS:
        controller.watches(informers[kind.kind], bindings_in_namespace)
    controller.watches(informers["OverridePolicy"], bindings_in_namespace)
    controller.watches(informers["ClusterOverridePolicy"], all_bindings)
    controller.watches(informers["Cluster"], all_bindings)
    manager.add(controller)
    return controller
