"""What the ``kubernetes`` runtime needs to know about its cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flotilla.runtimes.base import RuntimeOptions

#: the field manager every server-side apply of Flotilla's uses
FIELD_MANAGER = "flotilla"
#: on every object Flotilla applies: which member cluster's agent owns it. Pruning
#: deletes only objects carrying it (with this cluster's name), so objects someone else
#: created, and objects another Flotilla member sharing the API applied, are never touched.
OWNED_LABEL = "flotilla.io/owned-by"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    name: str
    kubeconfig: Path
    context: str | None = None
    state_dir: Path = Path(".flotilla/cluster")
    #: where the cluster's Services are reached from outside (``spec.ingress``); empty:
    #: the pods' own addresses are reachable (loopback pods of the node agent, or a flat
    #: network), so endpoints are reported as the pods' addresses
    ingress: str = ""
    #: seconds between /readyz probes (also how fast "apiserver unreachable" shows)
    health_interval: float = 1.0
    #: bound on any single request to the cluster's API
    request_timeout: float = 5.0

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> KubernetesConfig:
        extra = options.extra
        kubeconfig = extra.get("kubeconfig")
        if not kubeconfig:
            raise ValueError("the kubernetes runtime needs --kubeconfig PATH")
        return cls(name=options.cluster, kubeconfig=Path(kubeconfig),
                   context=extra.get("context") or None, state_dir=options.state_dir,
                   ingress=extra.get("ingress", ""),
                   health_interval=float(extra.get("health-interval", 1.0)))
