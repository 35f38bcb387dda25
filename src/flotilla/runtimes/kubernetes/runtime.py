"""KubernetesRuntime: one real Kubernetes cluster, driven through its API (pull mode).

Writes: every Work manifest is server-side applied under the field manager
``flotilla`` (forced: Flotilla is the authority for the fields it sets) and labelled
``flotilla.io/owned-by=<cluster>``; owned objects that left the desired set are deleted;
namespaces are created as needed and never deleted. A sync loop does this, so a desired
set handed over while the API is down is applied once it is back.

Reads: list-then-watch caches of Deployments and Services (owned), Pods, Nodes and
EndpointSlices, re-listed after any break (an apiserver restart resumes from a fresh
list, as client-go's reflector does); every status view is computed from them, so the
agent's reads never wait on the network. A probe of ``/readyz`` says whether the API is
reachable; while it is not, the cluster reports no ready node and an
``APIServerReachable=False`` condition ("apiserver unreachable"), so the control plane
taints it as it taints a cluster whose nodes all failed, while the agent keeps
heartbeating.

Client: lightkube (see docs/architecture.md, "The kubernetes runtime's client").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig, LoadResourceError, codecs
from lightkube.config.client_adapter import AsyncClient as raw_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Namespace, Node, Pod, Service
from lightkube.types import CascadeType

from flotilla.resources.quantity import integer_amount
from flotilla.resources.requests import RequestError, pod_requests
from flotilla.runtimes.base import (
    APPLYING,
    CapacityStatus,
    ClusterInfo,
    Condition,
    Manifest,
    ManifestError,
    ManifestIdentifier,
    NodeStatus,
    NodeSummary,
    PodStatus,
    Resources,
    ServiceEndpoints,
    ServicePortStatus,
    WorkloadStatus,
    manifest_identifier,
)
from flotilla.runtimes.kubernetes.config import FIELD_MANAGER, OWNED_LABEL, KubernetesConfig
from flotilla.runtimes.kubernetes.manifests import (
    CLUSTER_SCOPED,
    PRUNED_KINDS,
    ObjectKey,
    key_of,
    namespaces_of,
    prepare,
    selector_matches,
)
from flotilla.runtimes.kubernetes.status import (
    job_status,
    node_status,
    pod_status,
    slice_endpoints,
    workload_status,
)
from flotilla.runtimes.local.feed import ChangeFeed

log = logging.getLogger(__name__)
Obj = dict[str, Any]
UNREACHABLE = "apiserver unreachable"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _as_dict(obj: Any) -> Obj:
    if isinstance(obj, dict):
        return obj
    out: Obj = obj.to_dict()
    return out


class KubernetesRuntime:
    def __init__(self, config: KubernetesConfig) -> None:
        self.config = config
        self._feed = ChangeFeed()
        self._desired: list[Manifest] = []
        self._desired_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: AsyncClient | None = None
        self._raw: httpx2.AsyncClient | None = None
        self._reachable = False
        self._unreachable_reason = "not probed yet"
        self._version = ""
        self._apply_errors: dict[ManifestIdentifier, str] = {}
        #: bumped by every `apply`; the sync loop records the one it has written whole,
        #: so `info` says "applying" until then (the agent's Work condition reads it)
        self._desired_generation = 0
        self._synced_generation = 0
        #: kinds applied in this cluster's life (persisted), so pruning finds them
        self._kinds: set[tuple[str, str]] = set(PRUNED_KINDS)
        self._kinds_file = config.state_dir / "kubernetes-kinds.json"
        self._deployments: dict[str, Obj] = {}
        self._jobs: dict[str, Obj] = {}
        self._services: dict[str, Obj] = {}
        self._pods: dict[str, Obj] = {}
        self._nodes: dict[str, Obj] = {}
        self._slices: dict[str, Obj] = {}
        self._slice_api = ""

    @property
    def name(self) -> str:
        return self.config.name

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        # one line per request at INFO would drown the agent's own log
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        try:
            single = KubeConfig.from_file(self.config.kubeconfig).get(self.config.context)
        except Exception as exc:  # lightkube raises ConfigError, OSError, YAML errors
            raise ValueError(f"kubeconfig {self.config.kubeconfig}: {exc}") from None
        if single is None:
            raise ValueError(f"kubeconfig {self.config.kubeconfig}: no context "
                             f"{self.config.context or '(current)'}")
        timeout = httpx2.Timeout(self.config.request_timeout)
        self._client = AsyncClient(config=single, timeout=timeout, field_manager=FIELD_MANAGER,
                                   trust_env=False)
        self._raw = raw_client(single, ConnectionParams(timeout=timeout, trust_env=False))
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError, ValueError, TypeError):
            self._kinds |= {(a, k) for a, k in json.loads(self._kinds_file.read_text())}
        loop = asyncio.get_running_loop()
        owned: dict[str, Any] = {OWNED_LABEL: self.name}
        for name, coro in [
            ("health", self._health_loop()),
            ("sync", self._sync_loop()),
            ("deployments", self._follow(Deployment, self._deployments, labels=owned)),
            ("services", self._follow(Service, self._services, labels=owned)),
            ("jobs", self._follow(Job, self._jobs, labels=owned)),
            ("pods", self._follow(Pod, self._pods)),
            ("nodes", self._follow(Node, self._nodes, namespaced=False)),
            ("endpointslices", self._follow_slices()),
        ]:
            self._tasks.append(loop.create_task(coro, name=f"kubernetes {self.name} {name}"))

    async def stop(self, *, keep_pods: bool) -> None:
        """The cluster's workloads outlive the agent either way: they are the cluster's
        (``keep_pods`` is the local runtime's concern); the watches and clients stop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            await self._client.close()
        if self._raw is not None:
            await self._raw.aclose()

    async def apply(self, manifests: list[Manifest]) -> None:
        objects = prepare(manifests, self.name)  # raises before anything changes
        for obj in objects:
            try:
                resource_registry.load(obj["apiVersion"], obj["kind"])
            except LoadResourceError:
                raise ManifestError(
                    f"{key_of(obj)}: kind {obj['kind']} of {obj['apiVersion']} is not known "
                    f"to the kubernetes runtime") from None
        self._desired = objects
        self._desired_generation += 1
        self._desired_changed.set()
        self._feed.bump()  # the Works are "applying" now

    # -- writing ---------------------------------------------------------------------
    async def _sync_loop(self) -> None:
        """Apply the desired set and prune; again whenever it changes or the API comes
        back, and after a failure with back-off."""
        delay = 0.2
        while True:
            await self._desired_changed.wait()
            self._desired_changed.clear()
            generation = self._desired_generation
            try:
                await self._sync(list(self._desired))
                self._synced_generation = generation
                delay = 0.2
            except (httpx2.HTTPError, OSError, ApiError) as exc:
                log.warning("cluster %s: applying to the Kubernetes API: %s; retrying in "
                            "%.1fs", self.name, exc, delay)
                self._desired_changed.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            self._feed.bump()

    async def _sync(self, objects: list[Manifest]) -> None:
        client = self._api()
        for ns in namespaces_of(objects):
            namespace: Any = Namespace.from_dict(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            await client.apply(namespace, field_manager=FIELD_MANAGER, force=True)
        errors: dict[ManifestIdentifier, str] = {}
        new_kinds = {(o["apiVersion"], o["kind"]) for o in objects} - self._kinds
        if new_kinds:
            self._kinds |= new_kinds
            self._kinds_file.write_text(json.dumps(sorted(self._kinds)))
        for obj in objects:
            try:
                resource: Any = codecs.from_dict(obj)
                await client.apply(resource, field_manager=FIELD_MANAGER, force=True)
            except ApiError as exc:
                if exc.status.code is None or exc.status.code >= 500:
                    raise
                errors[manifest_identifier(obj)] = f"{key_of(obj)}: {exc.status.message}"
        self._apply_errors = errors
        wanted = {key_of(o) for o in objects}
        for api_version, kind in sorted(self._kinds):
            await self._prune(api_version, kind, wanted)

    async def _prune(self, api_version: str, kind: str, wanted: set[ObjectKey]) -> None:
        try:
            res: Any = resource_registry.load(api_version, kind)
        except LoadResourceError:
            return
        client = self._api()
        namespaced = kind not in CLUSTER_SCOPED
        listing = client.list(res, namespace="*" if namespaced else None,
                              labels={OWNED_LABEL: self.name})
        try:
            async for item in listing:
                obj = _as_dict(item)
                key = key_of({"apiVersion": api_version, "kind": kind, **obj})
                if key in wanted:
                    continue
                log.info("cluster %s: pruning %s (no longer in any Work)", self.name, key)
                # Background: the API's default for a batch/v1 Job orphans its pods.
                with contextlib.suppress(ApiError):  # already gone
                    await client.delete(res, key.name,
                                        namespace=key.namespace if namespaced else None,
                                        cascade=CascadeType.BACKGROUND)
        except ApiError as exc:
            if exc.status.code != 404:  # a kind this server does not serve
                raise

    def _api(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("KubernetesRuntime used before start()")
        return self._client

    # -- reading ---------------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            reachable, reason = await self._probe()
            if reachable != self._reachable or reason != self._unreachable_reason:
                if reachable:
                    log.info("cluster %s: Kubernetes API reachable (%s)", self.name,
                             self._version)
                    self._desired_changed.set()  # re-assert and prune after an outage
                else:
                    log.warning("cluster %s: %s: %s", self.name, UNREACHABLE, reason)
                self._reachable, self._unreachable_reason = reachable, reason
                self._feed.bump()
            await asyncio.sleep(self.config.health_interval)

    async def _probe(self) -> tuple[bool, str]:
        raw = self._raw
        if raw is None:
            return False, "not started"
        try:
            resp = await raw.get("/readyz")
            if resp.status_code != 200:
                return False, f"/readyz answered {resp.status_code}: {resp.text.strip()[:200]}"
            if not self._version:
                version = (await raw.get("/version")).json()
                self._version = str(version.get("gitVersion", ""))
            return True, ""
        except (httpx2.HTTPError, OSError, ValueError) as exc:
            return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _follow(self, res: Any, cache: dict[str, Obj], *,
                      labels: dict[str, Any] | None = None, namespaced: bool = True) -> None:
        """Keep ``cache`` equal to the server's objects: list, then watch from the list's
        resourceVersion; after any break (apiserver restart, 410 Gone), list again."""
        client = self._api()
        ns = "*" if namespaced else None
        delay = 0.2
        while True:
            try:
                listing = client.list(res, namespace=ns, labels=labels)
                fresh = {}
                async for item in listing:
                    obj = _as_dict(item)
                    fresh[_key(obj)] = obj
                cache.clear()
                cache.update(fresh)
                self._feed.bump()
                delay = 0.2
                async for kind, item in client.watch(res, namespace=ns, labels=labels,
                                                     resource_version=listing.resourceVersion):
                    obj = _as_dict(item)
                    if kind == "DELETED":
                        cache.pop(_key(obj), None)
                    else:
                        cache[_key(obj)] = obj
                    self._feed.bump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # transport errors, 410 Gone, decoding: list again
                log.debug("cluster %s: watch of %s broke: %s", self.name, res.__name__, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _follow_slices(self) -> None:
        """EndpointSlices are ``discovery.k8s.io/v1`` from Kubernetes 1.21 and only
        ``v1beta1`` before: ask API discovery which one this server serves."""
        delay = 0.2
        while not self._slice_api:
            raw = self._raw
            try:
                if raw is None:
                    raise RuntimeError("not started")
                resp = await raw.get("/apis/discovery.k8s.io")
                resp.raise_for_status()
                versions = [v.get("version") for v in resp.json().get("versions") or []]
                self._slice_api = "v1" if "v1" in versions else "v1beta1"
            except Exception as exc:
                log.debug("cluster %s: discovering EndpointSlices: %s", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        res: Any
        if self._slice_api == "v1":
            from lightkube.resources.discovery_v1 import EndpointSlice
            res = EndpointSlice
        else:
            res = resource_registry.get("discovery.k8s.io/v1beta1", "EndpointSlice") or \
                create_namespaced_resource("discovery.k8s.io", "v1beta1", "EndpointSlice",
                                           "endpointslices")
        await self._follow(res, self._slices)

    # -- views -----------------------------------------------------------------------
    def changes(self) -> AsyncIterator[int]:
        return aiter(self._feed)

    def info(self) -> ClusterInfo:
        reachable = Condition(
            "APIServerReachable", "True" if self._reachable else "False",
            "APIServerReady" if self._reachable else "APIServerUnreachable",
            "" if self._reachable else f"{UNREACHABLE}: {self._unreachable_reason}")
        applied = Condition(
            "ManifestsApplied", "False" if self._apply_errors else "True",
            "ApplyRejected" if self._apply_errors else "Applied",
            "; ".join(sorted(self._apply_errors.values()))[:1000])
        return ClusterInfo(conditions=(reachable, applied), kubernetes_version=self._version,
                           unapplied=self._unapplied())

    def _unapplied(self) -> tuple[tuple[ManifestIdentifier, str], ...]:
        """Every desired object until the sync of the latest desired set finished (a
        Deployment seen in the cluster does not mean its Service is written yet), then
        the objects the API refused."""
        if self._synced_generation < self._desired_generation:
            why = APPLYING if self._reachable else \
                f"{APPLYING} once the API is back ({UNREACHABLE})"
            return tuple((manifest_identifier(o), why) for o in self._desired)
        return tuple(sorted(self._apply_errors.items()))

    def _pod_list(self) -> list[Obj]:
        return list(self._pods.values())

    def workloads(self) -> list[WorkloadStatus]:
        out = []
        for m in self._desired:
            if m["kind"] == "Job":
                key = key_of(m)
                out.append(job_status(m, self._jobs.get(f"{key.namespace}/{key.name}")))
                continue
            if m["kind"] != "Deployment":
                continue
            key = key_of(m)
            live = self._deployments.get(f"{key.namespace}/{key.name}")
            selector = (m.get("spec") or {}).get("selector")
            pods = [p for p in self._pod_list()
                    if (p.get("metadata") or {}).get("namespace") == key.namespace
                    and selector_matches(selector, (p.get("metadata") or {}).get("labels") or {})]
            out.append(workload_status(m, live, pods))
        return out

    def pods(self) -> list[PodStatus]:
        return [pod_status(p) for _, p in sorted(self._pods.items())]

    def nodes(self) -> list[NodeStatus]:
        pods = self._pod_list()
        out = [node_status(n, pods) for _, n in sorted(self._nodes.items())]
        if not self._reachable:  # what the cache says is stale: nothing is known ready
            out = [NodeStatus(n.name, False, n.capacity, Resources(), n.allocated, n.pods,
                              n.labels) for n in out]
        return out

    def capacity(self) -> CapacityStatus:
        capacity = allocatable = allocated = Resources()
        nodes = self.nodes()
        for n in nodes:
            capacity = capacity + n.capacity
            if n.ready:
                allocatable = allocatable + n.allocatable
                allocated = allocated + n.allocated
        return CapacityStatus(capacity, allocatable, allocated,
                              NodeSummary(total=len(nodes), ready=sum(n.ready for n in nodes)))

    def estimate_replicas(self, pod_template: Manifest) -> int:
        try:
            req = pod_requests((pod_template or {}).get("spec") or {})
        except RequestError:
            return 0
        cpu = integer_amount("cpu", req["cpu"]) if "cpu" in req else 0
        memory = integer_amount("memory", req["memory"]) if "memory" in req else 0
        total = 0
        for n in self.nodes():
            if not n.ready:
                continue
            free = n.allocatable - n.allocated
            fits = [free.pods]
            if cpu:
                fits.append(free.cpu_millis // cpu)
            if memory:
                fits.append(free.memory_bytes // memory)
            total += max(0, min(fits))
        return total

    def endpoints(self) -> list[ServiceEndpoints]:
        out = []
        for m in self._desired:
            if m["kind"] != "Service":
                continue
            key = key_of(m)
            ports = tuple(
                ServicePortStatus(
                    name=str(p.get("name") or ""), port=int(p.get("port") or 0),
                    protocol=str(p.get("protocol") or "TCP"),
                    target_port=p.get("targetPort") or int(p.get("port") or 0),
                    ingress_address=self.config.ingress or None,
                    ingress_port=int(p.get("port") or 0) if self.config.ingress else None)
                for p in (m.get("spec") or {}).get("ports") or [] if isinstance(p, dict))
            slices = [s for s in self._slices.values()
                      if (s.get("metadata") or {}).get("namespace") == key.namespace
                      and ((s.get("metadata") or {}).get("labels") or {})
                      .get(SERVICE_NAME_LABEL) == key.name]
            endpoints = tuple(slice_endpoints(slices)) if self._reachable else ()
            out.append(ServiceEndpoints(key.namespace, key.name, ports, endpoints))
        return out

    # -- chaos and logs --------------------------------------------------------------
    async def fail_node(self, name: str) -> None:
        await self._cordon(name, True)

    async def recover_node(self, name: str) -> None:
        await self._cordon(name, False)

    async def _cordon(self, name: str, unschedulable: bool) -> None:
        if f"/{name}" not in self._nodes:
            raise KeyError(f"node {name!r} not found in cluster {self.name}; nodes: "
                           f"{', '.join(k.lstrip('/') for k in sorted(self._nodes))}")
        await self._api().patch(Node, name, {"spec": {"unschedulable": unschedulable}})

    async def kill_pod(self, namespace: str, name: str) -> None:
        if f"{namespace}/{name}" not in self._pods:
            raise KeyError(f"pod {namespace}/{name} not found in cluster {self.name}")
        await self._api().delete(Pod, name, namespace=namespace, grace_period=0)

    def log_path(self, namespace: str, pod: str, container: str | None = None) -> Path:
        raise KeyError(f"pod {namespace}/{pod} runs in Kubernetes cluster {self.name}: its "
                       f"logs are the cluster's (kubectl --kubeconfig "
                       f"{self.config.kubeconfig} logs -n {namespace} {pod})")

    def logs(self, namespace: str, pod: str, container: str | None = None,
             tail: int | None = None) -> str:
        return str(self.log_path(namespace, pod, container))

