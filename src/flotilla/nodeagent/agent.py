"""NodeAgent: Nodes in a kube-apiserver whose bound pods run as local processes.

One process serves several Nodes of one cluster. It registers each Node (capacity,
allocatable, a Ready condition, a loopback InternalIP) and renews it, watches the pods
the kube-scheduler binds to them, and runs each with the local runtime's `Pod` (its
containers, probes, restart back-off and process containment), on a loopback pod IP of
its own (``--pod-cidr``, 127.0.0.0/8 is all on ``lo``) where each container listens on
its own ``containerPort``, so the EndpointSlices the controller-manager fills point at
real processes. Pod status (phase, conditions, podIP, containerStatuses) is written
back whenever a container changes. A pod being deleted is stopped within its grace
period and then removed, as a kubelet does.

Not done (see docs/kubernetes.md): volumes, ConfigMap/Secret env (resolved as empty),
adoption of running pods across a node-agent restart (they are restarted instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Node, Pod
from lightkube.types import PatchType

from flotilla.runtimes.base import ContainerStatus, ManifestError
from flotilla.runtimes.local.config import Timings
from flotilla.runtimes.local.containment import Containment, choose
from flotilla.runtimes.local.envvars import PodIdentity, container_env
from flotilla.runtimes.local.manifests import ContainerSpec, parse_template
from flotilla.runtimes.local.pod import Pod as LocalPod
from flotilla.runtimes.local.users import PodUser, parse_pod_user

log = logging.getLogger(__name__)
FIELD_MANAGER = "flotilla-node-agent"
KUBELET_VERSION = "v1.20.2-flotilla"
Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class NodeAgentConfig:
    kubeconfig: Path
    nodes: tuple[str, ...]
    state_dir: Path
    context: str | None = None
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    #: loopback range the pods' IPs come from; unique per node agent on one machine
    pod_cidr: str = "127.100.0.0/16"
    labels: dict[str, str] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    pod_user: str | None = None
    #: seconds between Node status renewals
    heartbeat: float = 10.0
    #: the member cluster's name, region and zone, given to pods (CLUSTER_NAME, ...)
    cluster: str = ""
    region: str = ""
    zone: str = ""


class NodeAgent:
    def __init__(self, config: NodeAgentConfig) -> None:
        if not config.nodes:
            raise ValueError("a node agent needs at least one node")
        self.config = config
        self._client: AsyncClient | None = None
        self._pods: dict[tuple[str, str], LocalPod] = {}
        self._uids: dict[tuple[str, str], str] = {}
        self._ips: dict[tuple[str, str], str] = {}
        self._network = ipaddress.ip_network(config.pod_cidr)
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pod_user: PodUser = parse_pod_user(config.pod_user)
        self._contain: Containment | None = None
        self._written: dict[tuple[str, str], Obj] = {}
        self._background: set[asyncio.Task[None]] = set()

    def _api(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("NodeAgent used before start()")
        return self._client

    async def start(self) -> None:
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        single = KubeConfig.from_file(self.config.kubeconfig).get(self.config.context)
        if single is None:
            raise ValueError(f"kubeconfig {self.config.kubeconfig}: no such context")
        self._client = AsyncClient(config=single, timeout=httpx2.Timeout(10.0),
                                   field_manager=FIELD_MANAGER, trust_env=False)
        for d in ("logs", "pods"):
            (self.config.state_dir / d).mkdir(parents=True, exist_ok=True)
        (self.config.state_dir / "pods").chmod(0o711)
        self._contain = choose("node-agent", self.config.state_dir, "auto")
        await self._contain.start(keep=[])
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat_loop(), name="node heartbeat"),
                       loop.create_task(self._watch_pods(), name="node pods"),
                       loop.create_task(self._status_loop(), name="node pod status")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(p.terminate() for p in self._pods.values()),
                             return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        self._pods.clear()
        if self._contain is not None:
            await self._contain.stop(keep_pods=False)
        if self._client is not None:
            await self._client.close()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    # -- nodes -----------------------------------------------------------------------
    def _node(self, name: str) -> Obj:
        capacity = {"cpu": self.config.cpu, "memory": self.config.memory,
                    "pods": str(self.config.pods)}
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                **self.config.labels, "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux", "type": "flotilla-node-agent"}},
            "status": {
                "capacity": capacity, "allocatable": capacity,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                              {"type": "Hostname", "address": name}],
                "conditions": [{"type": "Ready", "status": "True",
                                "reason": "FlotillaNodeAgentReady",
                                "message": "the Flotilla node agent runs this node's pods",
                                "lastHeartbeatTime": _now(),
                                "lastTransitionTime": _now()}],
                "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "operatingSystem": "linux",
                             "architecture": "amd64", "containerRuntimeVersion":
                             "flotilla-local://processes", "kubeProxyVersion": "",
                             "machineID": "", "systemUUID": "", "bootID": "",
                             "kernelVersion": "", "osImage": ""},
            },
        }

    async def _register(self, name: str) -> None:
        client = self._api()
        body = self._node(name)
        try:
            await client.get(Node, name)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            node: Any = Node.from_dict({k: v for k, v in body.items() if k != "status"})
            await client.create(node)
        await client.patch(Node.Status, name, {"status": body["status"]},
                           patch_type=PatchType.MERGE)

    async def _heartbeat_loop(self) -> None:
        while True:
            for name in self.config.nodes:
                try:
                    await self._register(name)
                except (ApiError, httpx2.HTTPError, OSError) as exc:
                    log.warning("node %s: registering: %s", name, exc)
            await asyncio.sleep(self.config.heartbeat)

    # -- pods ------------------------------------------------------------------------
    async def _watch_pods(self) -> None:
        client = self._api()
        mine = set(self.config.nodes)
        delay = 0.2
        while True:
            try:
                listing = client.list(Pod, namespace="*")
                seen: set[tuple[str, str]] = set()
                async for item in listing:
                    pod = item.to_dict()
                    if (pod.get("spec") or {}).get("nodeName") in mine:
                        seen.add(self._key(pod))
                        self._observe(pod)
                for key in set(self._pods) - seen:  # deleted while the watch was away
                    self._stop_pod(key, delete=False)
                delay = 0.2
                async for kind, item in client.watch(Pod, namespace="*",
                                                     resource_version=listing.resourceVersion):
                    pod = item.to_dict()
                    if (pod.get("spec") or {}).get("nodeName") not in mine:
                        continue
                    if kind == "DELETED":
                        self._stop_pod(self._key(pod), delete=False)
                    else:
                        self._observe(pod)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node agent: watching pods: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    @staticmethod
    def _key(pod: Obj) -> tuple[str, str]:
        meta = pod.get("metadata") or {}
        return (str(meta.get("namespace", "")), str(meta.get("name", "")))

    def _observe(self, pod: Obj) -> None:
        key = self._key(pod)
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if meta.get("deletionTimestamp"):
            self._stop_pod(key, delete=True)
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        if key in self._pods and self._uids.get(key) == uid:
            return
        if key in self._pods:  # same name, new pod: the old one goes first
            self._stop_pod(key, delete=False)
            return
        self._start_pod(pod, key, uid)

    def _pod_ip(self, key: tuple[str, str], pod: Obj) -> str:
        previous = (pod.get("status") or {}).get("podIP")
        used = set(self._ips.values())
        if previous and ipaddress.ip_address(previous) in self._network and previous not in used:
            return str(previous)
        for host in self._network.hosts():
            if str(host) not in used and not str(host).endswith(".0"):
                return str(host)
        raise RuntimeError(f"pod CIDR {self._network} is full")

    def _start_pod(self, pod: Obj, key: tuple[str, str], uid: str) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        node = str(spec.get("nodeName"))
        try:
            template = parse_template({"metadata": {"labels": meta.get("labels") or {}},
                                       "spec": spec}, f"pod {key[0]}/{key[1]}")
        except ManifestError as exc:
            log.warning("node %s: cannot run pod %s/%s: %s", node, *key, exc)
            self._fail(key, str(exc))
            return
        ip = self._pod_ip(key, pod)
        self._ips[key] = ip
        self._uids[key] = uid
        local = LocalPod(key[0], key[1], str((meta.get("ownerReferences") or [{}])[0]
                                             .get("name", "")), template, uid=uid)
        self._pods[key] = local
        identity = PodIdentity(key[0], key[1], node, ip, self.config.cluster,
                               self.config.region, self.config.zone,
                               home=str(self.config.state_dir / "pods" / f"{key[0]}_{key[1]}"))
        ports = {c.name: {p.key: p.container_port for p in c.ports}
                 for c in template.containers}

        def env(c: ContainerSpec, ident: PodIdentity, assigned: dict[str, int]
                ) -> dict[str, str]:
            return container_env(c, ident, assigned, {}, {})

        local.bind(node, identity, log_dir=self.config.state_dir / "logs",
                   timings=self.config.timings, env_builder=env, on_change=self._dirty.set,
                   ports=ports, pod_user=self._pod_user, containment=self._contain)
        log.info("node %s: running pod %s/%s on %s", node, *key, ip)
        self._dirty.set()

    def _fail(self, key: tuple[str, str], message: str) -> None:
        status = {"phase": "Failed", "reason": "UnsupportedPod", "message": message[:500]}
        self._spawn(self._patch_status(key, status))

    def _stop_pod(self, key: tuple[str, str], *, delete: bool) -> None:
        local = self._pods.pop(key, None)
        uid = self._uids.pop(key, "")
        self._ips.pop(key, None)
        self._written.pop(key, None)
        if local is None:
            if delete:
                self._spawn(self._finalize(key, uid))
            return

        async def stop() -> None:
            await local.terminate()
            local.remove_home()
            if delete:
                await self._finalize(key, uid)
        self._spawn(stop())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _finalize(self, key: tuple[str, str], uid: str) -> None:
        """The kubelet's last word on a pod being deleted: its processes are gone, so the
        object can go (grace period 0)."""
        with contextlib.suppress(ApiError, httpx2.HTTPError):
            await self._api().delete(Pod, key[1], namespace=key[0], grace_period=0)

    # -- status ----------------------------------------------------------------------
    async def _status_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.05)  # coalesce a burst of container changes
            self._dirty.clear()
            for key, local in list(self._pods.items()):
                status = self._status(key, local)
                if self._written.get(key) == status:
                    continue
                if await self._patch_status(key, status):
                    self._written[key] = status
                else:
                    self._dirty.set()
            if self._dirty.is_set():
                await asyncio.sleep(0.5)

    async def _patch_status(self, key: tuple[str, str], status: Obj) -> bool:
        try:
            await self._api().patch(Pod.Status, key[1], {"status": status},
                                    namespace=key[0], patch_type=PatchType.MERGE)
            return True
        except ApiError as exc:
            return exc.status.code == 404  # gone: nothing to write
        except (httpx2.HTTPError, OSError) as exc:
            log.warning("pod %s/%s: writing status: %s", *key, exc)
            return False

    def _status(self, key: tuple[str, str], local: LocalPod) -> Obj:
        view = local.status(self._ips[key])
        ready = "True" if view.ready else "False"
        started = _rfc3339(local.created)
        conditions = [
            {"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": started}
            for t, s in (("Initialized", "True"), ("Ready", ready),
                         ("ContainersReady", ready), ("PodScheduled", "True"))]
        return {
            "phase": view.phase, "podIP": self._ips[key], "podIPs": [{"ip": self._ips[key]}],
            "hostIP": "127.0.0.1", "startTime": started, "conditions": conditions,
            "containerStatuses": [_container_status(c) for c in view.containers],
        }


def _container_status(c: ContainerStatus) -> Obj:
    if c.state == "running":
        state: Obj = {"running": {"startedAt": _now()}}
    elif c.state == "terminated":
        state = {"terminated": {"exitCode": c.last_exit_code or 0, "reason": c.reason or
                                "Completed"}}
    else:
        state = {"waiting": {"reason": c.reason or "ContainerCreating",
                             **({"message": c.message[:500]} if c.message else {})}}
    last: Obj = {}
    if c.last_exit_code is not None and c.state != "terminated":
        last = {"terminated": {"exitCode": c.last_exit_code, "reason": "Error"}}
    return {"name": c.name, "image": c.image, "imageID": "", "ready": c.ready,
            "restartCount": c.restart_count, "started": c.state == "running",
            "state": state, "lastState": last,
            "containerID": f"flotilla://{c.pid}" if c.pid else ""}



async def run_node_agent(config: NodeAgentConfig) -> None:
    """Entry point for ``flotilla node-agent``: serve until SIGINT/SIGTERM, then stop
    every pod (a restarted node agent runs them again)."""
    from flotilla.lifecycle import Step, serve

    agent = NodeAgent(config)
    await serve([Step("node agent", start=agent.start, stop=agent.stop)])
