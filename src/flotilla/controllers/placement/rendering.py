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
from flotilla.client.mutate import mutate
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.permanent import PermanentError
from flotilla.controllers.placement.binder import TEMPLATE_KINDS
from flotilla.controllers.placement.overrides import OverrideError
from flotilla.controllers.placement.render import (
    by_name,
    referenced_dependencies,
    render_for_cluster,
    services_selecting,
)
from flotilla.controllers.rollout.revisions import pinned_template
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import (
    cluster_of_execution_namespace,
    execution_namespace,
)
from flotilla.scheduler import PlacementError, compile_cluster

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
WORK = by_kind("Work")
CLUSTER = by_kind("Cluster")
OP = by_kind("OverridePolicy")
COP = by_kind("ClusterOverridePolicy")
LABEL_BINDING = "flotilla.io/binding"


def work_name(binding: Object) -> str:
    meta = binding["metadata"]
    return f"{meta['namespace']}.{meta['name']}"


def binding_of_work(work: Object) -> ObjectKey | None:
    label = (work["metadata"].get("labels") or {}).get(LABEL_BINDING)
    if not label or "." not in label:
        return None
    namespace, _, name = label.partition(".")
    return ObjectKey(namespace, name)


class Renderer:
    def __init__(self, client: ResourceClient, informers: dict[str, Informer]) -> None:
        self.client = client
        self.inf = informers
        self.events = EventRecorder(client, "renderer")

    def _template(self, binding: Object) -> Object | None:
        ref = binding["spec"]["resource"]
        informer = self.inf.get(ref["kind"])
        if informer is None:
            return None
        return informer.cache.get(ObjectKey(ref.get("namespace") or "", ref["name"]))

    def _companions(self, template: Object, namespace: str) -> list[Object]:
        """Dependencies (ConfigMaps, Secrets) and the Services that select the workload
        without being bound themselves."""
        if template["kind"] != "Deployment":
            return []
        out: list[Object] = []
        for kind, name in sorted(referenced_dependencies(template)):
            dep = self.inf[kind].cache.get(ObjectKey(namespace, name))
            if dep is not None:
                out.append(dep)
        bound = {b["spec"]["resource"]["name"] for b in
                 self.inf["ResourceBinding"].cache.list(namespace=namespace)
                 if b["spec"]["resource"]["kind"] == "Service"}
        services = [s for s in self.inf["Service"].cache.list(namespace=namespace)
                    if s["metadata"]["name"] not in bound]
        out += services_selecting(template, services)
        return out

    async def reconcile(self, key: ObjectKey) -> Result | None:
        binding = self.inf["ResourceBinding"].cache.get(key)
        label = f"{key.namespace}.{key.name}"
        wanted: dict[str, Object] = {}
        if binding is not None and not binding["metadata"].get("deletionTimestamp"):
            template = self._template(binding)
            if template is not None:
                try:
                    wanted = self._works(binding, template)
                except (OverrideError, PlacementError) as exc:
                    # Keep what runs; the policy (or cluster) must be fixed first.
                    raise PermanentError("OverrideFailed", str(exc)) from None
        # A cluster being evicted keeps its Work, as it is, until the failover controller
        # finishes the graceful-eviction task (replacements ready elsewhere, or timeout)
        # or marks it purgeMode Immediately (old replicas released, cluster still avoided).
        evicting = {str(t.get("fromCluster")) for t in
                    ((binding or {}).get("spec") or {}).get("gracefulEvictionTasks") or []
                    if t.get("purgeMode") not in ("Immediately", "Directly")}
        existing = self.inf["Work"].cache.list(f"{LABEL_BINDING}={label}")
        for work in existing:
            cluster = cluster_of_execution_namespace(work["metadata"]["namespace"])
            if cluster not in wanted and cluster not in evicting:
                with contextlib.suppress(NotFoundError):
                    await self.client.delete(WORK, work["metadata"]["namespace"],
                                             work["metadata"]["name"])
        for _cluster, work in sorted(wanted.items()):
            await self._upsert(work)
        return None

    def _works(self, binding: Object, template: Object) -> dict[str, Object]:
        namespace = binding["metadata"]["namespace"]
        clusters = by_name(self.inf["Cluster"].cache.list())
        overrides = [*self.inf["ClusterOverridePolicy"].cache.list(),
                     *self.inf["OverridePolicy"].cache.list(namespace=namespace)]
        companions = self._companions(template, namespace)
        out: dict[str, Object] = {}
        is_workload = template["kind"] == "Deployment"
        for target in binding["spec"].get("clusters") or []:
            name, replicas = target["name"], int(target.get("replicas") or 0)
            cluster = clusters.get(name)
            if cluster is None or (is_workload and replicas == 0):
                continue
            # A RolloutPolicy may hold a cluster on an older revision's pod template.
            rendered = render_for_cluster(pinned_template(binding, template, name),
                                          replicas if is_workload else None,
                                          compile_cluster(cluster), overrides, companions)
            applied = [f"{a.policy}[{a.rule}]:{'+'.join(a.overriders)}"
                       for a in rendered.applied]
            out[name] = {
                "apiVersion": WORK.api_version, "kind": "Work",
                "metadata": {
                    "name": work_name(binding), "namespace": execution_namespace(name),
                    "labels": {LABEL_BINDING: f"{namespace}.{binding['metadata']['name']}"},
                    "annotations": {"flotilla.io/overrides": ",".join(applied)}
                    if applied else {},
                },
                "spec": {"workload": {"manifests": rendered.manifests}},
            }
        return out

    async def _upsert(self, work: Object) -> None:
        meta = work["metadata"]

        def change(current: Object) -> bool:
            cur_meta = current["metadata"]
            if current.get("spec") == work["spec"] and \
                    (cur_meta.get("labels") or {}) == meta["labels"] and \
                    (cur_meta.get("annotations") or {}) == meta["annotations"]:
                return False
            current["spec"] = copy.deepcopy(work["spec"])
            cur_meta["labels"] = dict(meta["labels"])
            cur_meta["annotations"] = dict(meta["annotations"])
            return True

        await mutate(self.client, WORK, meta["namespace"], meta["name"], change,
                     create=lambda: copy.deepcopy(work))


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
