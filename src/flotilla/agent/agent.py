"""The agent: registration, heartbeat, Work sync and status reports, wired together.

Static stability is the rule: when the control plane is unreachable the agent keeps
running what it last applied, keeps retrying with back-off, and resumes its watches from
where they stopped once the server is back. A restarted agent re-adopts the pods its
runtime still owns (the runtime's state dir) instead of starting duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import socket
import ssl
import time
from typing import Any

import uvicorn

from flotilla.agent.admin import admin_app
from flotilla.agent.config import AgentConfig
from flotilla.agent.heartbeat import Heartbeat
from flotilla.agent.metrics import AgentMetrics
from flotilla.agent.snapshot import (
    CLUSTER,
    ENDPOINT_SLICE,
    capacity_status,
    cluster_manifest,
    endpoint_slice,
    manifest_identifier,
    merge_cluster_spec,
    workload_health,
    workload_status,
)
from flotilla.client.base import ApiError, NotFoundError, Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.client.informer import EventHandlers, Informer
from flotilla.lifecycle import Component, FatalError, Loops, Step, serve
from flotilla.lifecycle.asgi import AsgiServer
from flotilla.pki import server_ssl_context
from flotilla.resources.conditions import Condition, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import LABEL_CLUSTER, execution_namespace, now_rfc3339
from flotilla.runtimes import get_runtime
from flotilla.runtimes.base import APPLYING, ManifestError, Runtime

log = logging.getLogger(__name__)
WORK = by_kind("Work")


class Agent:
    def __init__(self, cfg: AgentConfig, client: ResourceClient,
                 runtime: Runtime | None = None) -> None:
        self.cfg = cfg
        self.client = client
        self.runtime = runtime or get_runtime(cfg.runtime)(cfg.runtime_options())
        self.heartbeat = Heartbeat(client, cfg.cluster, cfg.heartbeat_interval)
        self.metrics = AgentMetrics(self.runtime)
        self.heartbeat.observe = self._heartbeat_observed
        self.works = Informer(client, WORK, namespace=execution_namespace(cfg.cluster))
        self._works_changed = asyncio.Event()
        self._report_now = asyncio.Event()
        self._applied: list[Object] | None = None
        self._apply_error: str | None = None
        #: last written report per target, to skip writes that change nothing
        self._written: dict[str, str] = {}
        self.api_endpoint: str | None = None
        self._first_report = asyncio.Event()
        self.works.add_handler(EventHandlers(
            on_add=lambda _o: self._works_changed.set(),
            on_update=lambda _o, _n: self._works_changed.set(),
            on_delete=lambda _o: self._works_changed.set(),
        ))

    # -- lifecycle ---------------------------------------------------------------------

    def components(self) -> list[Component]:
        """The agent's parts in start order, for `flotilla.lifecycle.serve`: claim the
        cluster (refused while another live agent holds it), adopt the pods, open the
        agent's endpoint, then the loops. They stop in reverse: the pods stay running
        (like a kubelet restart) for the next agent on this state dir to adopt, and the
        Lease is released last so that agent need not wait for it to expire."""
        admin = self._admin_endpoint()
        return [
            Step("lease", start=self.heartbeat.acquire, stop=self.heartbeat.release),
            Step("runtime", start=self.runtime.start,
                 stop=functools.partial(self.runtime.stop, keep_pods=True)),
            *([admin] if admin is not None else []),
            Loops(f"agent {self.cfg.cluster}", [
                ("register", self._register_loop),
                ("heartbeat", self._heartbeat_after_first_report),
                ("works-informer", self.works.run),
                ("apply", self._apply_loop),
                ("runtime-changes", self._watch_runtime),
                ("report", self._report_loop),
                ("usage", self._usage_loop),
            ]),
        ]

    def _admin_endpoint(self) -> AsgiServer | None:
        if not self.cfg.admin_listen:
            return None
        host, _, port = self.cfg.admin_listen.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
        sock.setblocking(False)
        bound_port = sock.getsockname()[1]
        tls = endpoint_tls(self.cfg)
        self.api_endpoint = f"{'http' if tls is None else 'https'}://{host}:{bound_port}"

        def config() -> uvicorn.Config:
            return uvicorn.Config(admin_app(self.runtime, self.cfg.token, self._review,
                                            self.metrics),
                                  log_level="warning", lifespan="off", access_log=False)

        return AsgiServer("agent endpoint", config, sock, tls=tls)

    def _heartbeat_observed(self, seconds: float, ok: bool) -> None:
        self.metrics.heartbeat_latency.observe(seconds)
        if ok:
            self.metrics.last_heartbeat.set_to_current_time()
        else:
            self.metrics.heartbeat_failures.inc()

    async def _review(self, authorization: str, verb: str) -> tuple[bool, str]:
        """May the holder of ``authorization`` use this cluster's endpoint?"""
        review = getattr(self.client, "review_access", None)
        if review is None:
            return False, "this agent cannot ask its control plane about callers"
        result: tuple[bool, str] = await review(authorization, {
            "verb": verb, "group": CLUSTER.group, "resource": CLUSTER.plural,
            "subresource": "proxy", "name": self.cfg.cluster})
        return result

    # -- registration ------------------------------------------------------------------

    async def register(self) -> Object | None:
        wanted = cluster_manifest(self.cfg, self.api_endpoint)
        return await converge(
            self.client, CLUSTER, "", self.cfg.cluster,
            lambda cur: merge_cluster_spec(cur, wanted),
            create=lambda: copy.deepcopy(wanted),
        )

    async def _register_loop(self) -> None:
        """Register once (retrying until the server answers); the loop then ends."""
        delay = 0.1
        while True:
            try:
                await self.register()
                log.info("cluster %s registered", self.cfg.cluster)
                self._report_now.set()
                break
            except Exception as exc:
                log.warning("registering cluster %s: %s; retrying in %.1fs",
                            self.cfg.cluster, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _heartbeat_after_first_report(self) -> None:
        """Heartbeat only once this agent has reported what it runs now. A cluster that
        comes back after a crash would otherwise turn Ready while its EndpointSlices
        still list the pods that died with it, and traffic would follow them."""
        await self._first_report.wait()
        await self.heartbeat.run()

    # -- desired state -----------------------------------------------------------------

    def desired_manifests(self) -> list[Object]:
        """All manifests of all Works for this cluster, in a stable order. When two Works
        carry the same object, the first by Work name wins (and is reported)."""
        seen: set[tuple[str, str, str, str]] = set()
        out: list[Object] = []
        for work in self.works.cache.list():
            if (work.get("metadata") or {}).get("deletionTimestamp"):
                continue
            manifests = ((work.get("spec") or {}).get("workload") or {}).get("manifests") or []
            for m in manifests:
                ident = manifest_identifier(m)
                if ident in seen:
                    continue
                seen.add(ident)
                out.append(m)
        return out

    async def _apply_loop(self) -> None:
        await self.works.wait_synced()
        self._works_changed.set()
        while True:
            await self._works_changed.wait()
            self._works_changed.clear()
            desired = self.desired_manifests()
            if desired == self._applied:
                # Nothing to apply, but a Work may be new (one deleted and created again
                # with the same manifests while this agent could not reach the API): its
                # status is written by the report, which nothing else would trigger.
                self._report_now.set()
                continue
            started = time.monotonic()
            try:
                await self.runtime.apply(copy.deepcopy(desired))
                self.metrics.apply_latency.observe(time.monotonic() - started)
                self._applied = desired
                self._apply_error = None
            except ManifestError as exc:
                self.metrics.apply_errors.inc()
                log.warning("cluster %s cannot apply its Works: %s", self.cfg.cluster, exc)
                self._apply_error = str(exc)
            self._report_now.set()

    # -- reporting ---------------------------------------------------------------------

    async def _watch_runtime(self) -> None:
        async for _version in self.runtime.changes():
            self._report_now.set()

    async def _usage_loop(self) -> None:
        """Report again every ``usage_interval``: pods' CPU and memory change without
        any event the runtime would announce."""
        if self.cfg.usage_interval <= 0:
            await asyncio.Event().wait()  # never: the loop set expects a running task
        while True:
            await asyncio.sleep(self.cfg.usage_interval)
            self._report_now.set()

    async def _report_loop(self) -> None:
        delay = 0.1
        while True:
            await self._report_now.wait()
            await asyncio.sleep(self.cfg.report_debounce)  # coalesce a burst of changes
            self._report_now.clear()
            try:
                await self.report()
                self._first_report.set()
                delay = 0.1
            except Exception as exc:
                log.warning("status report for %s failed: %s; retrying in %.1fs",
                            self.cfg.cluster, exc, delay)
                self._report_now.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def report(self) -> None:
        await self._report_cluster()
        await self._report_endpoints()
        if self.works.has_synced:
            await self._report_works()

    def _unchanged(self, key: str, payload: Any) -> bool:
        text = json.dumps(payload, sort_keys=True)
        if self._written.get(key) == text:
            return True
        self._written[key] = text
        return False

    def _forget(self, key: str) -> None:
        self._written.pop(key, None)

    async def _report_cluster(self) -> None:
        status = capacity_status(self.runtime.capacity())
        info = self.runtime.info()
        if info.kubernetes_version:
            status["kubernetesVersion"] = info.kubernetes_version
        # The runtime's own conditions (e.g. APIServerReachable): merged by type, so
        # the control plane's Ready condition is left alone.
        conditions = [Condition(c.type, c.status, c.reason, c.message)
                      for c in info.conditions]
        if self._unchanged("cluster", {**status, "conditions": [
                (c.type, c.status, c.reason, c.message) for c in conditions]}):
            return

        def change(obj: Object) -> bool:
            cur = obj.setdefault("status", {})
            changed = set_conditions(obj, conditions) if conditions else False
            if all(cur.get(k) == v for k, v in status.items()):
                return changed
            cur.update(status)
            return True

        try:
            stored = await converge(self.client, CLUSTER, "", self.cfg.cluster, change)
        except BaseException:
            self._forget("cluster")
            raise
        if stored is None:  # not registered yet: write it on the report after registering
            self._forget("cluster")

    async def _report_endpoints(self) -> None:
        wanted = {}
        for svc in self.runtime.endpoints():
            try:
                obj = endpoint_slice(self.cfg, svc)
            except ValueError as exc:  # cannot be named without colliding: not reported
                if self._unchanged(f"eps-error/{svc.namespace}/{svc.name}", str(exc)):
                    continue
                log.warning("cluster %s: Service %s/%s: %s", self.cfg.cluster,
                            svc.namespace, svc.name, exc)
                continue
            wanted[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        for (ns, name), obj in sorted(wanted.items()):
            key = f"eps/{ns}/{name}"
            if self._unchanged(key, obj["spec"]):
                continue
            spec = obj["spec"]

            def change(cur: Object, spec: Object = spec) -> bool:
                if cur.get("spec") == spec:
                    return False
                cur["spec"] = spec
                return True

            try:
                await converge(self.client, ENDPOINT_SLICE, ns, name, change,
                             create=functools.partial(copy.deepcopy, obj))
            except BaseException:
                self._forget(key)
                raise
        # Slices of Services this cluster no longer runs.
        current = await self.client.list(ENDPOINT_SLICE, None,
                                         selector=f"{LABEL_CLUSTER}={self.cfg.cluster}")
        for item in current.items:
            meta = item["metadata"]
            if (meta.get("namespace", ""), meta["name"]) not in wanted:
                with contextlib.suppress(NotFoundError):
                    await self.client.delete(ENDPOINT_SLICE, meta.get("namespace", ""),
                                             meta["name"])
                self._forget(f"eps/{meta.get('namespace', '')}/{meta['name']}")

    async def _report_works(self) -> None:
        workloads = {(w.kind, w.namespace, w.name): w for w in self.runtime.workloads()}
        unapplied = dict(self.runtime.info().unapplied)
        current = {f"work/{w['metadata']['name']}/{w['metadata'].get('uid', '')}"
                   for w in self.works.cache.list()}
        for gone in [k for k in self._written if k.startswith("work/") and k not in current]:
            self._forget(gone)
        for work in self.works.cache.list():
            meta = work["metadata"]
            status = self._work_status(work, workloads, unapplied)
            # By uid too: a Work deleted and created again under the same name while
            # this agent could not see it (a control-plane partition) has no status
            # yet, whatever the agent last wrote to its predecessor.
            key = f"work/{meta['name']}/{meta.get('uid', '')}"
            if self._unchanged(key, _strip_times(status)):
                continue

            def change(cur: Object, status: Object = status) -> bool:
                # A condition that did not change keeps its transition time.
                if _strip_times(cur.get("status") or {}) == _strip_times(status):
                    return False
                before = (cur.get("status") or {}).get("conditions")
                cur["status"] = {**status, "conditions": before}
                set_conditions(cur, [Condition.of(c) for c in status["conditions"]])
                return True

            try:
                await converge(self.client, WORK, meta["namespace"], meta["name"], change)
            except ApiError:
                self._forget(key)
                raise

    def _work_status(self, work: Object, workloads: dict[tuple[str, str, str], Any],
                     unapplied: dict[tuple[str, str, str, str], str]) -> Object:
        manifests = ((work.get("spec") or {}).get("workload") or {}).get("manifests") or []
        statuses = []
        pending: list[tuple[str, str]] = []
        for ordinal, m in enumerate(manifests):
            api_version, kind, ns, name = ident = manifest_identifier(m)
            if ident in unapplied:
                pending.append((f"{kind} {ns}/{name}", unapplied[ident]))
            group, _, version = api_version.rpartition("/")
            entry: Object = {"identifier": {"ordinal": ordinal, "group": group,
                                            "version": version, "kind": kind,
                                            "namespace": ns, "name": name}}
            w = workloads.get((kind, ns, name))
            if w is not None:
                status = workload_status(w)
                template = ((m.get("spec") or {}).get("template")) or {}
                # How many more replicas would fit here: input for dynamic weights.
                status["estimatedReplicas"] = self.runtime.estimate_replicas(template)
                entry["status"] = status
                entry["health"] = workload_health(w)
            statuses.append(entry)
        # Applied only once every manifest of this Work is written in the cluster: a
        # runtime applying in the background lists what it has not written yet.
        applied = self._apply_error is None and not pending
        if self._apply_error is not None:
            reason, message = "ManifestError", self._apply_error
        elif pending:
            reason = "Applying" if all(why.startswith(APPLYING) for _, why in pending) \
                else "ApplyRejected"
            message = "; ".join(f"{what}: {why}" for what, why in pending)[:1000]
        else:
            reason, message = "AppliedSuccessfully", ""
        return {
            "conditions": [{
                "type": "Applied",
                "status": "True" if applied else "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now_rfc3339(),
            }],
            "manifestStatuses": statuses,
        }


def endpoint_tls(cfg: AgentConfig) -> ssl.SSLContext | None:
    """The agent endpoint serves HTTPS with its pair; plain HTTP only when asked for.
    Without either, the agent refuses to start rather than serve pods' logs and chaos
    in the clear."""
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        try:
            return server_ssl_context(cfg.tls_cert, cfg.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise FatalError(f"cannot load the agent endpoint's pair {cfg.tls_cert}, "
                             f"{cfg.tls_key}: {exc}") from None
    if cfg.insecure_http:
        log.warning("*** --insecure-http: the agent endpoint of cluster %s serves PLAIN "
                    "HTTP (tokens, logs and chaos calls unencrypted) ***", cfg.cluster)
        return None
    raise FatalError(
        "the agent endpoint serves HTTPS: give --tls-cert and --tls-key (make a pair with "
        f"'flotilla cert create {cfg.cluster} --host {cfg.address}'), or --insecure-http")


def _strip_times(status: Object) -> str:
    conds = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
             for c in status.get("conditions") or []]
    return json.dumps({**status, "conditions": conds}, sort_keys=True)


async def run_agent(cfg: AgentConfig) -> None:
    """Entry point for ``flotilla agent``: run until SIGINT/SIGTERM, then stop the agent
    and leave the pods running for the next agent to adopt (as a kubelet restart does).
    """
    from flotilla.client.http import HttpClient

    client = HttpClient(cfg.server, cfg.token, ca=cfg.ca_file)
    await serve([Step("api client", stop=client.close), *Agent(cfg, client).components()])
