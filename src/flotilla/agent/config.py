"""Agent settings, as given on the ``flotilla agent`` command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flotilla.runtimes.base import RuntimeOptions


@dataclass(frozen=True, slots=True)
class AgentConfig:
    server: str
    token: str | None
    cluster: str
    region: str = ""
    zone: str = ""
    provider: str = "flotilla"
    runtime: str = "local"
    labels: dict[str, str] = field(default_factory=dict)
    address: str = "127.0.0.1"
    nodes: int = 3
    node_cpu: str = "4"
    node_memory: str = "8Gi"
    node_pods: int = 110
    state_dir: Path = Path(".flotilla/clusters/default")
    #: How often the heartbeat Lease is renewed; the control plane's grace period
    #: (default 3 s) should be a few of these.
    heartbeat_interval: float = 1.0
    #: Status reports are coalesced over this window so that a burst of pod changes
    #: becomes one write.
    report_debounce: float = 0.05
    #: Pods' CPU and memory are measured and reported this often (the autoscaler's
    #: Resource metrics; Kubernetes' metrics-server scrapes every 15 s); 0: never.
    usage_interval: float = 5.0
    #: Where the agent's own endpoint (pods, nodes, logs, chaos) listens, "HOST:PORT";
    #: port 0 picks a free one. Published as the Cluster's ``spec.apiEndpoint``.
    admin_listen: str | None = None
    #: The CA the API server is verified against (None: ``$FLOTILLA_CA_FILE``).
    ca_file: Path | None = None
    #: The agent endpoint's serving pair (`flotilla cert create`, or `flotilla up`).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Serve the agent endpoint over plain HTTP (only behind a TLS terminator).
    insecure_http: bool = False
    #: ``USER[:GROUP]`` the local runtime runs pods as (None: nobody when root)
    pod_user: str | None = None
    #: the kubernetes runtime's cluster: its kubeconfig, context and ingress address
    kubeconfig: Path | None = None
    context: str | None = None
    ingress: str = ""
    #: local runtime: the address pods bind to and endpoints advertise ("": the
    #: runtime's default, 127.0.0.1); `flotilla up --netns` gives the cluster's ingress
    #: address, so the gateway reaches pods across the cluster's link
    pod_address: str = ""

    def runtime_options(self) -> RuntimeOptions:
        return RuntimeOptions(
            cluster=self.cluster,
            region=self.region,
            zone=self.zone,
            address=self.address,
            state_dir=self.state_dir,
            nodes=self.nodes,
            node_cpu=self.node_cpu,
            node_memory=self.node_memory,
            node_pods=self.node_pods,
            extra=self._extra(),
        )

    def _extra(self) -> dict[str, str]:
        extra: dict[str, str] = {}
        if self.pod_user:
            extra["pod-user"] = self.pod_user
        if self.kubeconfig is not None:
            extra["kubeconfig"] = str(self.kubeconfig)
        if self.context:
            extra["context"] = self.context
        if self.ingress:
            extra["ingress"] = self.ingress
        if self.pod_address:
            extra["pod-address"] = self.pod_address
        return extra
