"""One identity per part `flotilla up` starts, and the clusters' address ranges.

Each agent gets a token bound to its cluster (role ``agent``), the gateway and the DNS
read-only tokens of their own roles; each token goes to a 0600 file under
``credentials/`` (`flotilla.pki.layout.PkiLayout`) that the process reads with
``--token-file``, so no secret is on a command line or in ``up.json``. Every start
issues fresh tokens (a token of the same name is replaced), so a previous run's files
stop working.

Before an agent starts, its Cluster is created (or updated) with the admin token and
given ``spec.addressRange``: the cluster's own loopback address and the pods' address,
the only places its agent may then point endpoints at.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flotilla.api.auth import AGENT, add_token
from flotilla.api.authz.builtin import DNS, GATEWAY
from flotilla.pki.files import ensure_private_dir, write_private
from flotilla.pki.layout import PkiLayout
from flotilla.resources.kinds import by_kind
from flotilla.up.kube_members import pod_cidr, started_here
from flotilla.up.topology import ClusterPlan

CLUSTER = by_kind("Cluster")
#: Where local-runtime pods listen (`flotilla.runtimes.local.config.LocalClusterConfig`).
POD_ADDRESS = "127.0.0.1"

#: (method, path, body) -> (status code, JSON body); the caller holds the admin token.
Call = Callable[[str, str, dict[str, Any] | None], tuple[int, Any]]


def agent_component(cluster: str) -> str:
    return f"agent-{cluster}"


def issue(data_dir: Path, name: str, role: str, *, cluster: str = "") -> Path:
    """A new token ``name`` of ``role``, written to its credential file; its path."""
    layout = PkiLayout(data_dir)
    ensure_private_dir(layout.credentials_dir)
    token = add_token(data_dir, name, role, cluster=cluster)
    path = layout.credential(name)
    write_private(path, (token + "\n").encode())
    return path


def issue_all(data_dir: Path, plans: list[ClusterPlan], *, gateway: bool,
              dns: bool) -> dict[str, Path]:
    """Credential files by component name: ``agent-<cluster>``, ``gateway``, ``dns``."""
    out = {agent_component(p.name): issue(data_dir, agent_component(p.name), AGENT,
                                          cluster=p.name) for p in plans}
    if gateway:
        out[GATEWAY] = issue(data_dir, GATEWAY, GATEWAY)
    if dns:
        out[DNS] = issue(data_dir, DNS, DNS)
    return out


def address_range(plan: ClusterPlan, index: int) -> list[str]:
    """A Kubernetes member `up` started also has its node agent's pod range (the pods'
    own loopback IPs are its endpoints); one of an existing cluster has what the
    operator adds. Under `up --netns` the cluster's link holds all its addresses."""
    if plan.address_block:
        return [plan.address_block]
    ranges = {f"{plan.address}/32", f"{POD_ADDRESS}/32"}
    if plan in started_here([plan]):
        ranges.add(pod_cidr(index))
    return sorted(ranges)


def register_clusters(call: Call, plans: list[ClusterPlan], timeout: float = 10.0) -> None:
    """Create or update each Cluster with its address range (read-modify-write, retried
    on a conflict with an agent registering at the same moment)."""
    base = f"/apis/{CLUSTER.api_version}/{CLUSTER.plural}"
    for index, plan in enumerate(plans):
        deadline = time.monotonic() + timeout
        while True:
            code, current = call("GET", f"{base}/{plan.name}", None)
            if code == 404:
                code, answer = call("POST", base, {
                    "apiVersion": CLUSTER.api_version, "kind": CLUSTER.kind,
                    "metadata": {"name": plan.name},
                    "spec": {"region": plan.region, "zone": plan.zone,
                             "ingressAddress": plan.address,
                             "addressRange": address_range(plan, index)}})
            elif code == 200:
                current.setdefault("spec", {})["addressRange"] = address_range(plan, index)
                code, answer = call("PUT", f"{base}/{plan.name}", current)
            else:
                answer = current
            if code in (200, 201):
                break
            if code != 409 or time.monotonic() > deadline:
                raise RuntimeError(f"cannot register cluster {plan.name} with its address "
                                   f"range: HTTP {code}: {answer}")
