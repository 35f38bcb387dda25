"""LocalRuntime: a small Kubernetes on this machine (see docs/components/runtimes.md).

All decisions happen in one reconcile loop, woken whenever anything changes (an apply,
a container starting, becoming ready or crashing, a pod gone, a node failing). Each
round re-derives what to do from the current state — Deployments' plans, placement of
pending pods, ingress listeners — then persists the state file. No decision depends on
remembering the previous round, which is what makes adoption after a restart simple.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flotilla.resources.indexes import format_indexes
from flotilla.runtimes.base import (
    CapacityStatus,
    ClusterInfo,
    Condition,
    Endpoint,
    JobProgress,
    Manifest,
    ManifestError,
    NodeStatus,
    NodeSummary,
    PodStatus,
    PodUsage,
    Resources,
    RuntimeCounters,
    ServiceEndpoints,
    ServicePortStatus,
    WorkloadStatus,
)
from flotilla.runtimes.local.config import LocalClusterConfig
from flotilla.runtimes.local.containment import Containment, choose
from flotilla.runtimes.local.envvars import PodIdentity, container_env
from flotilla.runtimes.local.feed import ChangeFeed
from flotilla.runtimes.local.ingress import Ingress, Route
from flotilla.runtimes.local.jobs import JobLedger, judge, next_pods
from flotilla.runtimes.local.manifests import (
    ContainerSpec,
    DeploymentSpec,
    DesiredState,
    JobSpec,
    Key,
    ServiceSpec,
    parse_manifests,
    parse_template,
)
from flotilla.runtimes.local.pod import AdoptedContainer, Pod
from flotilla.runtimes.local.procs import ProcessId, is_alive, terminate_tree
from flotilla.runtimes.local.rollout import PodView, plan, resolve
from flotilla.runtimes.local.scheduling import NodeState, fit_count, place
from flotilla.runtimes.local.state import StateFile
from flotilla.runtimes.local.usage import UsageMeter
from flotilla.runtimes.local.users import parse_pod_user

log = logging.getLogger(__name__)

#: node label telling how pods are contained on this cluster: "cgroup" or "process"
CONTAINMENT_LABEL = "local.flotilla.io/containment"
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"


class LocalRuntime:
    def __init__(self, config: LocalClusterConfig) -> None:
        if not config.nodes:
            raise ValueError("a local cluster needs at least one node")
        self.config = config
        self._nodes = {n.name: NodeState(n) for n in config.nodes}
        self._desired = DesiredState()
        self._manifests: list[Manifest] = []
        #: Deployment -> (spec fingerprint, generation), for Deployments without one
        self._generations: dict[Key, tuple[str, int]] = {}
        self._observed: dict[Key, int] = {}
        self._pods: dict[Key, Pod] = {}
        #: each Job's progress on this cluster (`jobs.JobLedger`), kept in the state file
        self._ledgers: dict[Key, JobLedger] = {}
        #: wall-clock times a reconcile round is due (Job deadlines, TTLs)
        self._alarms: dict[float, asyncio.TimerHandle] = {}
        self._meter = UsageMeter()
        self._feed = ChangeFeed()
        self._dirty = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopped = False
        self._background: set[asyncio.Task[None]] = set()
        self._round_robin: dict[Route, int] = {}
        self._ingress = Ingress(config.address, self._pick)
        self._state = StateFile(config.state_dir / "state.json")
        self._log_dir = config.state_dir / "logs"
        #: root-owned 0711: pod users may enter their own directory but not list others
        self._pods_dir = config.state_dir / "pods"
        self._pod_user = config.pod_user or parse_pod_user(None)
        #: chosen at start(): cgroup v2 per container, or process trees + subreaper
        self._contain: Containment | None = None
        #: probe failures for the agent's /metrics (`RuntimeCounters`)
        self.counters = RuntimeCounters()

    @property
    def containment(self) -> Containment:
        """How this cluster's pods are contained (set by `start`)."""
        if self._contain is None:
            raise RuntimeError("LocalRuntime.containment read before start()")
        return self._contain

    @property
    def name(self) -> str:
        return self.config.name

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("LocalRuntime.start() called twice")
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._pods_dir.mkdir(exist_ok=True)
        self._pods_dir.chmod(0o711)
        self._contain = choose(self.name, self.config.state_dir, self.config.containment)
        # a fallback the operator did not ask for is worth seeing without --verbose
        weak = self._contain.mode == "process" and self.config.containment == "auto"
        log.log(logging.WARNING if weak else logging.INFO, "cluster %s: %s", self.name,
                self._contain.describe())
        saved = self._state.load()
        if saved is not None:
            await self._restore(saved)
        self._forget_homes()
        # cgroups of pods not adopted (deleted while no agent ran, or unwanted) die now
        await self._contain.start(keep=list(self._pods))
        self._loop_task = asyncio.get_running_loop().create_task(
            self._reconcile_loop(), name=f"runtime {self.name}")
        self._kick()

    async def stop(self, *, keep_pods: bool) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self._ingress.close()
        await asyncio.gather(*self._background, return_exceptions=True)
        pods = list(self._pods.values())
        if keep_pods:
            self._save()
            await asyncio.gather(*(p.detach() for p in pods))
            # The processes now belong to whichever run adopts them next.
            self._pods.clear()
        else:
            await asyncio.gather(*(self._remove(p) for p in pods))
            self._save()
        if self._contain is not None:
            await self._contain.stop(keep_pods=keep_pods)

    async def apply(self, manifests: list[Manifest]) -> None:
        desired = parse_manifests(manifests)  # raises before anything changes
        self._desired = desired
        self._manifests = [dict(m) for m in manifests]
        self._update_generations(desired)
        self._save()
        self._kick()

    # -- chaos -----------------------------------------------------------------------
    async def fail_node(self, name: str) -> None:
        node = self._node(name)
        node.ready = False
        victims = [p for p in self._pods.values() if p.node == name]
        await asyncio.gather(*(self._remove(p, grace=0.0) for p in victims))
        self._save()
        self._kick()

    async def recover_node(self, name: str) -> None:
        self._node(name).ready = True
        self._save()
        self._kick()

    async def kill_pod(self, namespace: str, name: str) -> None:
        pod = self._pods.get((namespace, name))
        if pod is None:
            raise KeyError(f"pod {namespace}/{name} not found in cluster {self.name}")
        await self._remove(pod, grace=0.0)

    def _node(self, name: str) -> NodeState:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"node {name!r} not found in cluster {self.name}; nodes: "
                           f"{', '.join(self._nodes)}") from None

    # -- views -----------------------------------------------------------------------
    def changes(self) -> AsyncIterator[int]:
        return aiter(self._feed)

    def pods(self) -> list[PodStatus]:
        return [p.status(self.config.pod_address) for p in self._sorted_pods()]

    def workloads(self) -> list[WorkloadStatus]:
        self._meter.keep_only({pod.uid: pod for pod in self._pods.values()})
        return [*(self._workload(spec) for spec in self._desired.deployments.values()),
                *(self._job_status(spec) for spec in self._desired.jobs.values())]

    def _pod_usage(self, pods: list[Pod]) -> tuple[PodUsage, ...]:
        out = []
        for pod in sorted(pods, key=lambda p: p.name):
            pids = [c.process.pid for c in pod.containers.values() if c.process is not None]
            read = self._meter.read(pod.uid, pids)
            if read is not None:
                out.append(PodUsage(pod.name, read[0], read[1], pod.ready))
        return tuple(out)

    def nodes(self) -> list[NodeStatus]:
        used = self._usage(ready_only=False)
        return [NodeStatus(name=n.name, ready=n.ready, capacity=n.config.capacity,
                           allocatable=n.config.capacity if n.ready else Resources(),
                           allocated=used.get(n.name, Resources()),
                           pods=used.get(n.name, Resources()).pods,
                           labels={**n.config.labels, CONTAINMENT_LABEL: self._mode()})
                for n in self._nodes.values()]

    def _mode(self) -> str:
        return self._contain.mode if self._contain is not None else "unknown"

    def capacity(self) -> CapacityStatus:
        capacity = allocatable = allocated = Resources()
        used = self._usage(ready_only=True)
        for n in self._nodes.values():
            capacity = capacity + n.config.capacity
            if n.ready:
                allocatable = allocatable + n.config.capacity
                allocated = allocated + used.get(n.name, Resources())
        ready = sum(n.ready for n in self._nodes.values())
        return CapacityStatus(capacity, allocatable, allocated,
                              NodeSummary(total=len(self._nodes), ready=ready))

    def info(self) -> ClusterInfo:
        return ClusterInfo()

    def estimate_replicas(self, pod_template: Manifest) -> int:
        template = parse_template(pod_template)
        return fit_count(template, list(self._nodes.values()), self._usage(ready_only=True))

    def endpoints(self) -> list[ServiceEndpoints]:
        exposed = {route: port for port, route in self._ingress.ports.items()}
        out = []
        for svc in self._desired.services.values():
            ports = tuple(
                ServicePortStatus(
                    name=p.name, port=p.port, protocol=p.protocol, target_port=p.target_port,
                    ingress_address=self.config.address
                    if (svc.namespace, svc.name, p.name) in exposed else None,
                    ingress_port=exposed.get((svc.namespace, svc.name, p.name)))
                for p in svc.ports)
            out.append(ServiceEndpoints(svc.namespace, svc.name, ports,
                                        tuple(self._service_endpoints(svc))))
        return out

    def log_path(self, namespace: str, pod: str, container: str | None = None) -> Path:
        live = self._pods.get((namespace, pod))
        if container is None and live is not None:
            container = live.template.containers[0].name
        if container is not None:
            path = self._log_dir / f"{namespace}_{pod}_{container}.log"
            if path.exists():
                return path
        else:
            found = sorted(self._log_dir.glob(f"{namespace}_{pod}_*.log"))
            if found:
                return found[0]
        raise KeyError(f"no logs for pod {namespace}/{pod}"
                       + (f" container {container}" if container else ""))

    def logs(self, namespace: str, pod: str, container: str | None = None,
             tail: int | None = None) -> str:
        text = self.log_path(namespace, pod, container).read_text(errors="replace")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        return text

    # -- reconcile -------------------------------------------------------------------
    def _kick(self) -> None:
        self._dirty.set()
        self._feed.bump()

    async def _reconcile_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._reconcile()
            except Exception:
                log.exception("cluster %s: reconcile failed", self.name)
            self._feed.bump()

    async def _reconcile(self) -> None:
        deployments = self._desired.deployments
        for pod in list(self._pods.values()):
            owners: dict[Key, Any] = deployments if pod.owner_kind == "Deployment" \
                else self._desired.jobs
            if (pod.namespace, pod.owner) not in owners and not pod.terminating:
                self._remove_later(pod)
        for key in list(self._ledgers):
            if key not in self._desired.jobs:
                del self._ledgers[key]
        for job in self._desired.jobs.values():
            self._reconcile_job(job)
        for key, spec in deployments.items():
            owned = [p for p in self._pods.values()
                     if (p.namespace, p.owner) == key and p.owner_kind == "Deployment"]
            views = [PodView(p.name, p.template.hash, p.ready, p.node is not None, p.created,
                             p.terminating) for p in owned]
            step = plan(spec, views)
            by_name = {p.name: p for p in owned}
            for name in step.delete:
                self._remove_later(by_name[name])
            for _ in range(step.create):
                self._add_pod(spec)
            self._observed[key] = self._generation(key)
        self._schedule_pending()
        await self._ingress.sync(self._wanted_ingress())
        self._save()

    def _reconcile_job(self, spec: JobSpec) -> None:
        """Judge the Job's pods that ended, decide Complete/Failed once, start what is
        owed; after the end, stop what still runs and honour ttlSecondsAfterFinished."""
        key, rules = (spec.namespace, spec.name), spec.rules
        ledger = self._ledgers.setdefault(key, JobLedger())
        now = time.time()
        if ledger.started is None:
            ledger.started = now
        owned = [p for p in self._pods.values()
                 if (p.namespace, p.owner) == key and p.owner_kind == "Job"]
        for pod in owned:
            if pod.finished and not pod.judged:
                pod.judged = True
                ledger.record(rules, judge(rules, pod.exit_codes()), pod.completion_index,
                              restarts=pod.restarts())
        running = [p for p in owned if not p.judged and not p.terminating]
        ledger.decide(rules, now, active_restarts=sum(p.restarts() for p in running))
        if rules.suspended and ledger.finished is None:
            for pod in running:  # stopped, not failed: not counted
                pod.judged = True
                self._stop_later(pod)
            return
        if ledger.finished is not None:
            for pod in running:  # nothing of a finished Job runs on
                pod.judged = True
                self._stop_later(pod)
            if rules.ttl_after_finished is not None and ledger.finished_at is not None:
                due = ledger.finished_at + rules.ttl_after_finished
                if now >= due:
                    for pod in owned:
                        if not pod.terminating or pod.finished:
                            self._remove_later(pod)
                else:
                    self._alarm(due)
            return
        if rules.active_deadline is not None:
            self._alarm(ledger.started + rules.active_deadline)
        for index in next_pods(rules, ledger, [p.completion_index for p in running]):
            self._add_job_pod(spec, index)

    def _alarm(self, at: float) -> None:
        """A reconcile round at wall-clock time ``at`` (once per distinct time)."""
        if at in self._alarms:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, at - time.time())

        def ring() -> None:
            self._alarms.pop(at, None)
            self._kick()

        self._alarms[at] = loop.call_later(delay + 0.01, ring)

    def _add_job_pod(self, spec: JobSpec, index: int | None) -> None:
        stem = spec.name if index is None else f"{spec.name}-{index}"
        while True:
            suffix = "".join(random.choices(_SUFFIX_CHARS, k=5))
            name = f"{stem}-{suffix}"
            if (spec.namespace, name) not in self._pods:
                break
        pod = Pod(spec.namespace, name, spec.name, spec.template, owner_kind="Job",
                  completion_index=index)
        self._pods[pod.key] = pod

    def _stop_later(self, pod: Pod) -> None:
        """Stop a pod's processes but keep the pod (and its logs), as Kubernetes keeps
        the pods of a finished Job."""
        task = asyncio.get_running_loop().create_task(pod.terminate())
        self._background.add(task)
        task.add_done_callback(self._stopped_one)

    def _stopped_one(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        self._kick()

    def _job_status(self, spec: JobSpec) -> WorkloadStatus:
        key, rules = (spec.namespace, spec.name), spec.rules
        ledger = self._ledgers.get(key, JobLedger())
        owned = [p for p in self._pods.values()
                 if (p.namespace, p.owner) == key and p.owner_kind == "Job"]
        active = [p for p in owned if not p.judged and not p.terminating]
        conditions: tuple[Condition, ...] = ()
        if ledger.finished is not None:
            conditions = (Condition(ledger.finished, "True", ledger.reason, ledger.message),)
        else:
            pending = [p for p in active if p.pending_message]
            if pending:
                conditions = (Condition("Progressing", "False", "Unschedulable",
                                        pending[0].pending_message),)
        ready = sum(p.ready for p in active)
        return WorkloadStatus(
            kind="Job", namespace=spec.namespace, name=spec.name,
            desired_replicas=rules.parallelism, replicas=len(active),
            updated_replicas=len(active), ready_replicas=ready, available_replicas=ready,
            observed_generation=0, conditions=conditions,
            job=JobProgress(
                active=len(active), succeeded=ledger.succeeded, failed=ledger.failed,
                completed_indexes=ledger.completed_indexes() if rules.indexed else "",
                indexes=format_indexes(rules.indexes) if rules.indexed else "",
                ignored=ledger.ignored, start_time=ledger.started,
                completion_time=ledger.finished_at if ledger.finished == "Complete" else None))

    def _add_pod(self, spec: DeploymentSpec) -> None:
        while True:
            suffix = "".join(random.choices(_SUFFIX_CHARS, k=5))
            name = f"{spec.name}-{spec.template.hash}-{suffix}"
            if (spec.namespace, name) not in self._pods:
                break
        pod = Pod(spec.namespace, name, spec.name, spec.template)
        self._pods[pod.key] = pod

    def _schedule_pending(self) -> None:
        nodes = list(self._nodes.values())
        pending = sorted((p for p in self._pods.values()
                          if p.node is None and not p.terminating), key=lambda p: p.created)
        for pod in pending:
            used = self._usage(ready_only=False)
            same_owner: dict[str, int] = {}
            for other in self._pods.values():
                if (other.node and not other.terminating
                        and (other.namespace, other.owner) == (pod.namespace, pod.owner)):
                    same_owner[other.node] = same_owner.get(other.node, 0) + 1
            node, reason = place(pod.template, nodes, used, same_owner)
            if node is None:
                pod.pending_reason, pod.pending_message = "Unschedulable", reason
                continue
            self._bind(pod, node)

    def _bind(self, pod: Pod, node: str, *, ports: dict[str, dict[str, int]] | None = None,
              adopted: dict[str, AdoptedContainer] | None = None) -> None:
        identity = PodIdentity(pod.namespace, pod.name, node, self.config.pod_address,
                               self.config.name, self.config.region, self.config.zone,
                               home=str(self._pods_dir / f"{pod.namespace}_{pod.name}"))
        pod.bind(node, identity, log_dir=self._log_dir, timings=self.config.timings,
                 env_builder=self._env, on_change=self._kick, ports=ports, adopted=adopted,
                 pod_user=self._pod_user, containment=self._contain,
                 counters=self.counters)

    def _env(self, spec: ContainerSpec, pod: PodIdentity, ports: dict[str, int],
             ) -> dict[str, str]:
        env = container_env(spec, pod, ports, self._desired.config_maps,
                            self._desired.secrets)
        live = self._pods.get((pod.namespace, pod.name))
        if live is not None and live.completion_index is not None:
            env["JOB_COMPLETION_INDEX"] = str(live.completion_index)
        return env

    def _remove_later(self, pod: Pod) -> None:
        pod.terminating = True
        task = asyncio.get_running_loop().create_task(self._remove(pod))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _remove(self, pod: Pod, grace: float | None = None) -> None:
        """Terminate the pod's processes, then forget it and its logs."""
        pod.terminating = True
        self._kick()
        try:
            await pod.terminate(grace)
        finally:
            if self._pods.get(pod.key) is pod:
                del self._pods[pod.key]
            for runner in pod.containers.values():
                runner.log_path.unlink(missing_ok=True)
            pod.remove_home()
            self._kick()

    # -- derived views ---------------------------------------------------------------
    def _sorted_pods(self) -> list[Pod]:
        return sorted(self._pods.values(), key=lambda p: (p.namespace, p.name))

    def _usage(self, *, ready_only: bool) -> dict[str, Resources]:
        used: dict[str, Resources] = {}
        for pod in self._pods.values():
            if pod.node is None or pod.finished or (
                    ready_only and not self._nodes[pod.node].ready):
                continue
            used[pod.node] = used.get(pod.node, Resources()) + pod.template.requests
        return used

    def _workload(self, spec: DeploymentSpec) -> WorkloadStatus:
        key = (spec.namespace, spec.name)
        active = [p for p in self._pods.values()
                  if (p.namespace, p.owner) == key and not p.terminating]
        updated = [p for p in active if p.template.hash == spec.template.hash]
        ready = sum(p.ready for p in active)
        unavailable = resolve(spec.max_unavailable, spec.replicas, round_up=False) \
            if spec.strategy == "RollingUpdate" else spec.replicas
        complete = len(updated) == len(active) == spec.replicas and ready == spec.replicas
        pending = [p for p in active if p.pending_message]
        conditions = (
            Condition("Available", "True" if ready >= spec.replicas - unavailable else "False",
                      "MinimumReplicasAvailable" if ready >= spec.replicas - unavailable
                      else "MinimumReplicasUnavailable",
                      f"{ready}/{spec.replicas} replicas ready"),
            Condition("Progressing", "True",
                      "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                      pending[0].pending_message if pending else ""),
        )
        return WorkloadStatus(
            kind="Deployment", namespace=spec.namespace, name=spec.name,
            desired_replicas=spec.replicas, replicas=len(active),
            updated_replicas=len(updated), ready_replicas=ready, available_replicas=ready,
            observed_generation=self._observed.get(key, 0), conditions=conditions,
            pod_usage=self._pod_usage(active))

    def _service_endpoints(self, svc: ServiceSpec) -> list[Endpoint]:
        if not svc.selector:
            return []
        out = []
        for pod in self._sorted_pods():
            if pod.namespace != svc.namespace or not pod.ready or any(
                    pod.template.labels.get(k) != v for k, v in svc.selector.items()):
                continue
            ports = {}
            for sp in svc.ports:
                assigned = pod.assigned_port(sp.target_port)
                if assigned is not None:
                    ports[sp.name] = assigned
            out.append(Endpoint(self.config.pod_address, ports, pod.name, pod.node))
        return out

    def _wanted_ingress(self) -> dict[int, Route]:
        wanted: dict[int, Route] = {}
        for svc in sorted(self._desired.services.values(), key=lambda s: (s.namespace, s.name)):
            for p in svc.ports:
                if p.protocol == "TCP":
                    wanted.setdefault(p.port, (svc.namespace, svc.name, p.name))
        return wanted

    def _pick(self, route: Route) -> tuple[str, int] | None:
        svc = self._desired.services.get((route[0], route[1]))
        if svc is None:
            return None
        backends = [(e.address, e.ports[route[2]]) for e in self._service_endpoints(svc)
                    if route[2] in e.ports]
        if not backends:
            return None
        n = self._round_robin.get(route, 0)
        self._round_robin[route] = n + 1
        return backends[n % len(backends)]

    # -- persistence and adoption ----------------------------------------------------
    def _update_generations(self, desired: DesiredState) -> None:
        for key, spec in desired.deployments.items():
            previous = self._generations.get(key)
            if spec.generation:
                generation = spec.generation
            elif previous is None:
                generation = 1
            else:
                generation = previous[1] + (previous[0] != spec.fingerprint)
            self._generations[key] = (spec.fingerprint, generation)
        for key in list(self._generations):
            if key not in desired.deployments:
                del self._generations[key]

    def _generation(self, key: Key) -> int:
        return self._generations.get(key, ("", 0))[1]

    def _save(self) -> None:
        self._state.save({
            "cluster": self.name,
            "manifests": self._manifests,
            "nodes": {n.name: {"ready": n.ready} for n in self._nodes.values()},
            "generations": [[ns, name, fp, gen]
                            for (ns, name), (fp, gen) in self._generations.items()],
            "pods": [p.record() for p in self._sorted_pods() if p.node is not None],
            "jobs": [[ns, name, ledger.to_json()]
                     for (ns, name), ledger in sorted(self._ledgers.items())],
        })

    def _forget_homes(self) -> None:
        """Remove the directories of pods that no longer exist (killed while no agent
        ran, or unwanted at adoption): nothing of a pod outlives it."""
        kept = {f"{ns}_{name}" for ns, name in self._pods}
        for entry in self._pods_dir.iterdir():
            if entry.name not in kept:
                shutil.rmtree(entry, ignore_errors=True)

    async def _restore(self, saved: dict[str, Any]) -> None:
        """Load the previous run's state: adopt the pods still wanted, kill the rest."""
        try:
            self._desired = parse_manifests(saved.get("manifests", []))
            self._manifests = list(saved.get("manifests", []))
        except ManifestError as exc:
            log.warning("cluster %s: ignoring saved manifests: %s", self.name, exc)
        for name, node in saved.get("nodes", {}).items():
            if name in self._nodes:
                self._nodes[name].ready = bool(node.get("ready", True))
        for ns, name, fp, gen in saved.get("generations", []):
            self._generations[(ns, name)] = (fp, gen)
        for ns, name, ledger in saved.get("jobs", []):
            self._ledgers[(ns, name)] = JobLedger.from_json(ledger)
        unwanted: list[tuple[ProcessId, float]] = []
        records = saved.get("pods", [])
        for record in records:
            unwanted += self._adopt(record)
        await asyncio.gather(*(terminate_tree(proc, grace) for proc, grace in unwanted))
        gone = {(r["namespace"], r["name"]) for r in records} - set(self._pods)
        for key in sorted(gone):  # and whatever those pods left behind
            await self.containment.kill_pod(key)
            self.containment.forget_pod(key)

    def _adopt(self, record: dict[str, Any]) -> list[tuple[ProcessId, float]]:
        """Adopt one recorded pod; returns its processes (with grace) if it is unwanted."""
        processes = {
            name: ProcessId(c["pid"], c["start_time"])
            for name, c in record.get("containers", {}).items()
            if c.get("pid") and c.get("start_time") is not None}
        live = {name: p for name, p in processes.items() if is_alive(p)}
        key = (record["namespace"], record["name"])
        node = self._nodes.get(record.get("node") or "")
        # A Job's pods are not adopted: its ledger survives, so what they were running
        # is owed again and runs afresh (a completion index is never counted twice).
        wanted = (record.get("owner_kind", "Deployment") == "Deployment"
                  and (record["namespace"], record["owner"]) in self._desired.deployments
                  and node is not None and node.ready and key not in self._pods)
        try:
            template = parse_template(record["template"]) if wanted else None
        except (KeyError, ManifestError):
            template = None
        if template is None or node is None:
            return [(p, self.config.timings.max_grace) for p in live.values()]
        pod = Pod(record["namespace"], record["name"], record["owner"], template,
                  created=record.get("created"), uid=record.get("uid"))
        self._pods[key] = pod
        adopted = {
            name: AdoptedContainer(processes.get(name), int(c.get("restart_count", 0)),
                                   c.get("started_at"))
            for name, c in record.get("containers", {}).items()}
        self._bind(pod, node.name, ports=record.get("ports"), adopted=adopted)
        return []
