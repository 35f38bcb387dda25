"""The binder: every template governed by a PropagationPolicy gets a ResourceBinding.

Karmada calls this the detector. The binding records what to place (a reference to the
template, its replica count and per-replica requests) and the policy's placement as of
now, so that a policy edit shows up as a binding change the scheduler reacts to. A
template no policy governs any more loses its binding, and so, downstream, its Works.
"""

from __future__ import annotations

import logging
from typing import Any

from flotilla.client.base import InvalidError, NotFoundError, Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.permanent import PermanentError
from flotilla.controllers.placement.matching import best_policy
from flotilla.resources.kinds import Kind, by_kind
from flotilla.resources.naming import binding_name
from flotilla.resources.requests import pod_requests
from flotilla.resources.views import JobView, Meta

log = logging.getLogger(__name__)
BINDING = by_kind("ResourceBinding")
PP = by_kind("PropagationPolicy")
CPP = by_kind("ClusterPropagationPolicy")
#: Kinds a policy can propagate (what a member runtime knows how to run).
TEMPLATE_KINDS = tuple(by_kind(k) for k in ("Deployment", "Job", "Service", "ConfigMap",
                                            "Secret"))
LABEL_BOUND_KIND = "flotilla.io/template-kind"
LABEL_BOUND_NAME = "flotilla.io/template-name"


def template_key(obj: Object) -> ObjectKey:
    meta = obj["metadata"]
    return ObjectKey(meta.get("namespace") or "", f"{obj['kind']}/{meta['name']}")


def split_template_key(key: ObjectKey) -> tuple[Kind, str, str]:
    kind, _, name = key.name.partition("/")
    return by_kind(kind), key.namespace, name


def replica_requirements(template: Object) -> dict[str, Any] | None:
    """What one replica asks for: every container, by Kubernetes' effective request rule."""
    pod = (((template.get("spec") or {}).get("template") or {}).get("spec")) or {}
    requests = pod_requests(pod, "spec.template.spec")
    total = {res: str(requests[res]) for res in ("cpu", "memory") if res in requests}
    return {"resourceRequest": total} if total else None


def template_replicas(template: Object) -> int:
    """What the scheduler divides: a Deployment's replicas, a Job's completions
    (`JobView`), nothing for the kinds that go whole to every cluster."""
    if template["kind"] == "Deployment":
        return int((template.get("spec") or {}).get("replicas", 1))
    if template["kind"] == "Job":
        return JobView.of(template).completions
    return 0


def desired_binding(template: Object, policy: Object) -> Object:
    meta = template["metadata"]
    spec: Object = {
        "resource": {
            "apiVersion": template["apiVersion"], "kind": template["kind"],
            "namespace": meta.get("namespace") or "", "name": meta["name"],
            "uid": meta.get("uid", ""),
        },
        "replicas": template_replicas(template),
        "placement": (policy.get("spec") or {}).get("placement") or {},
        "policy": {"kind": policy["kind"],
                   "namespace": policy["metadata"].get("namespace") or "",
                   "name": policy["metadata"]["name"]},
    }
    if (reqs := replica_requirements(template)) is not None:
        spec["replicaRequirements"] = reqs
    return {
        "apiVersion": BINDING.api_version, "kind": "ResourceBinding",
        "metadata": {
            "name": binding_name(template["kind"], meta["name"]),
            "namespace": meta.get("namespace") or "default",
            "labels": {LABEL_BOUND_KIND: template["kind"], LABEL_BOUND_NAME: meta["name"]},
        },
        "spec": spec,
    }


class Binder:
    def __init__(self, client: ResourceClient, templates: dict[str, Informer],
                 policies: Informer, cluster_policies: Informer) -> None:
        self.client = client
        self.templates = templates
        self.policies = policies
        self.cluster_policies = cluster_policies
        self.events = EventRecorder(client, "binder")

    async def reconcile(self, key: ObjectKey) -> Result | None:
        kind, namespace, name = split_template_key(key)
        template = self.templates[kind.kind].cache.get(ObjectKey(namespace, name))
        bname = binding_name(kind.kind, name)
        policy = None
        if template is not None and not Meta.of(template.get("metadata")).deleting:
            policy = best_policy(template, [*self.policies.cache.list(namespace=namespace),
                                            *self.cluster_policies.cache.list()])
        if policy is None:
            try:
                await self.client.delete(BINDING, namespace or "default", bname)
                log.info("binding %s/%s removed: no policy governs %s", namespace, bname, key)
            except NotFoundError:
                pass
            return None
        assert template is not None
        wanted = desired_binding(template, policy)

        def change(current: Object) -> None:
            # The scheduler's and failover's fields stay theirs: spec.clusters is kept
            # (and so is every field the binder does not set).
            spec = {**current.get("spec", {}), **wanted["spec"]}
            if current.get("spec", {}).get("clusters"):
                spec["clusters"] = current["spec"]["clusters"]
            current["spec"] = spec
            labels = current["metadata"].get("labels") or {}
            current["metadata"]["labels"] = {**labels, **wanted["metadata"]["labels"]}

        created = False

        def create() -> Object:
            nonlocal created
            created = True
            return wanted

        try:
            await converge(self.client, BINDING, wanted["metadata"]["namespace"], bname,
                           change, create=create)
        except InvalidError as exc:  # the template makes a binding the API refuses
            raise PermanentError("InvalidBinding", f"cannot bind {kind.kind} {name!r}: "
                                 f"{exc}", obj=template) from None
        if created:
            await self.events.record(
                template, "Normal", "PolicyApplied",
                f"propagated by {policy['kind']} {policy['metadata']['name']}")
        return None


def build(manager: ControllerManager) -> Controller:
    templates = {k.kind: manager.informer(k) for k in TEMPLATE_KINDS}
    policies, cluster_policies = manager.informer(PP), manager.informer(CPP)
    binder = Binder(manager.client, templates, policies, cluster_policies)

    def template_of(key: ObjectKey) -> Object | None:
        kind, namespace, name = split_template_key(key)
        return templates[kind.kind].cache.get(ObjectKey(namespace, name))

    controller = Controller("binder", binder, workers=2, lookup=template_of)
    for inf in templates.values():
        controller.watches(inf, lambda o: (template_key(o),))

    def every_template(_policy: Object) -> list[ObjectKey]:
        return [template_key(o) for inf in templates.values() for o in inf.cache.list()]

    controller.watches(policies, every_template).watches(cluster_policies, every_template)
    manager.add(controller)
    return controller
