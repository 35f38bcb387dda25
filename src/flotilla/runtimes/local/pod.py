"""A pod: its identity, its node, its assigned ports and its containers.

Ports are assigned once per pod (like a pod IP) and kept across container restarts
and agent restarts, so endpoints do not move while a pod lives. Each pod also has its
own directory (its HOME and default working directory, 0700, owned by the pod's user),
removed with the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.runtimes.base import PodStatus, RuntimeCounters
from flotilla.runtimes.local.config import Timings
from flotilla.runtimes.local.container import ContainerRunner
from flotilla.runtimes.local.containment import Containment
from flotilla.runtimes.local.envvars import PodIdentity
from flotilla.runtimes.local.manifests import ContainerSpec, PodTemplate
from flotilla.runtimes.local.procs import ProcessId
from flotilla.runtimes.local.users import (
    IdentityError,
    PodUser,
    agent_user,
    container_user,
    make_home,
)

#: (container spec, pod identity, assigned ports) -> environment; raises EnvError
EnvBuilder = Callable[[ContainerSpec, PodIdentity, dict[str, int]], dict[str, str]]

_NOT_STARTED = {"ContainerCreating", "CreateContainerConfigError", "NoCommand",
                "RunContainerError"}


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class AdoptedContainer:
    process: ProcessId | None
    restart_count: int
    started_at: float | None


class Pod:
    def __init__(self, namespace: str, name: str, owner: str, template: PodTemplate, *,
                 created: float | None = None, uid: str | None = None,
                 owner_kind: str = "Deployment", completion_index: int | None = None,
                 ) -> None:
        self.namespace = namespace
        self.name = name
        self.owner = owner
        #: "Deployment" or "Job": which of the desired set's tables ``owner`` names
        self.owner_kind = owner_kind
        #: a pod of an Indexed Job: the index it completes (``JOB_COMPLETION_INDEX``)
        self.completion_index = completion_index
        #: a Job's pod that ended and was accounted in the Job's ledger
        self.judged = False
        self.template = template
        self.created = created if created is not None else time.time()
        self.uid = uid or uuid.uuid4().hex
        self.node: str | None = None
        self.ports: dict[str, dict[str, int]] = {}
        self.containers: dict[str, ContainerRunner] = {}
        self.terminating = False
        self.pending_reason = ""
        self.pending_message = ""
        self.home: Path | None = None
        self._contain: Containment | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def ready(self) -> bool:
        return (not self.terminating and bool(self.containers)
                and all(c.ready for c in self.containers.values()))

    @property
    def finished(self) -> bool:
        """Every container ended for good (restartPolicy Never, or OnFailure after a
        success): the pod runs nothing and holds no capacity, as in Kubernetes."""
        return (self.node is not None and bool(self.containers) and not self.terminating
                and all(c.state == "terminated" for c in self.containers.values()))

    def exit_codes(self) -> dict[str, int]:
        return {name: c.last_exit_code if c.last_exit_code is not None else 0
                for name, c in self.containers.items()}

    def restarts(self) -> int:
        return sum(c.restart_count for c in self.containers.values())

    def bind(self, node: str, identity: PodIdentity, *, log_dir: Path, timings: Timings,
             env_builder: EnvBuilder, on_change: Callable[[], None],
             ports: dict[str, dict[str, int]] | None = None,
             adopted: dict[str, AdoptedContainer] | None = None,
             pod_user: PodUser | None = None,
             containment: Containment | None = None,
             counters: RuntimeCounters | None = None) -> None:
        """Place the pod on ``node`` and start (or adopt) its containers."""
        self.node = node
        self._contain = containment or Containment(identity.cluster, "no runtime")
        pod_user = pod_user or agent_user()
        if identity.home:
            self.home = Path(identity.home)
            try:  # the directory belongs to the pod-level identity
                owner = container_user(pod_user, self.template.security, pod=self.name,
                                       container="")
            except IdentityError:
                owner = pod_user  # its containers report the refusal themselves
            make_home(self.home, owner)
        self.pending_reason = self.pending_message = ""
        self.ports = ports if ports is not None else {
            c.name: {p.key: free_port(identity.address) for p in c.ports}
            for c in self.template.containers}
        for spec in self.template.containers:
            previous = (adopted or {}).get(spec.name)
            container_ports = self.ports.setdefault(spec.name, {})

            def resolve(spec: ContainerSpec = spec,
                        container_ports: dict[str, int] = container_ports) -> dict[str, str]:
                return env_builder(spec, identity, container_ports)

            runner = ContainerRunner(
                spec, pod_name=self.name, address=identity.address, ports=container_ports,
                log_path=log_dir / f"{self.namespace}_{self.name}_{spec.name}.log",
                timings=timings, restart_policy=self.template.restart_policy,
                grace=self.template.grace_seconds, resolve_env=resolve, on_change=on_change,
                restart_count=previous.restart_count if previous else 0,
                adopt=previous.process if previous else None,
                started_at=previous.started_at if previous else None,
                pod_user=pod_user, home=self.home, namespace=self.namespace,
                containment=self._contain, counters=counters)
            self.containers[spec.name] = runner
            runner.start()

    async def terminate(self, grace: float | None = None) -> None:
        self.terminating = True
        wait = self.template.grace_seconds if grace is None else grace
        await asyncio.gather(*(c.stop(wait) for c in self.containers.values()))
        if self._contain is not None:  # whatever left the containers' trees goes too
            await self._contain.kill_pod(self.key)
            self._contain.forget_pod(self.key)

    def remove_home(self) -> None:
        if self.home is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.home)

    async def detach(self) -> None:
        await asyncio.gather(*(c.detach() for c in self.containers.values()))

    def processes(self) -> list[ProcessId]:
        return [c.process for c in self.containers.values() if c.process is not None]

    def assigned_port(self, target: int | str) -> int | None:
        """A Service targetPort (containerPort name or number) → the port it got here."""
        for spec in self.template.containers:
            for port in spec.ports:
                if target in (port.name, port.container_port):
                    return self.ports.get(spec.name, {}).get(port.key)
        return None

    # -- views -----------------------------------------------------------------------
    def status(self, address: str) -> PodStatus:
        containers = tuple(c.status() for c in self.containers.values())
        restarts = sum(c.restart_count for c in containers)
        reason, message = self.pending_reason, self.pending_message
        if self.node is None:
            phase, shown = "Pending", "Pending"
        else:
            states = {c.state for c in containers}
            odd = [c for c in containers if c.reason not in ("Running", "ContainerCreating")]
            if odd:
                reason, message = odd[0].reason, odd[0].message
            if states == {"terminated"}:
                ok = all(c.last_exit_code == 0 for c in containers)
                phase = "Succeeded" if ok else "Failed"
            elif all(c.state == "waiting" and c.reason in _NOT_STARTED and c.restart_count == 0
                     for c in containers):
                phase = "Pending"
            else:
                phase = "Running"
            waiting = [c.reason for c in containers if c.state != "running"]
            shown = waiting[0] if waiting else "Running"
        if self.terminating:
            shown = "Terminating"
        return PodStatus(
            namespace=self.namespace, name=self.name, owner=f"{self.owner_kind}/{self.owner}",
            node=self.node, phase=phase, status=shown, reason=reason, message=message,
            ready=self.ready, terminating=self.terminating, restarts=restarts,
            address=address, labels=dict(self.template.labels),
            template_hash=self.template.hash, created=self.created, containers=containers)

    def record(self) -> dict[str, Any]:
        """What a later agent run needs to adopt this pod (see `state`)."""
        return {
            "namespace": self.namespace, "name": self.name, "owner": self.owner,
            "owner_kind": self.owner_kind,
            "hash": self.template.hash, "uid": self.uid, "created": self.created,
            "node": self.node, "ports": self.ports, "template": self.template.raw,
            "containers": {
                name: {"pid": c.process.pid if c.process else None,
                       "start_time": c.process.start_time if c.process else None,
                       "restart_count": c.restart_count, "started_at": c.started_at}
                for name, c in self.containers.items()},
        }
