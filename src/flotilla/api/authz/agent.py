"""The agent restriction (Flotilla's NodeRestriction): an agent credential of cluster C
touches only what belongs to C.

RBAC (the ``agent`` role) says which kinds an agent may write; this module narrows that
to its own cluster by looking at the objects themselves, which a rule cannot:

* Cluster C only: its status, and in its spec only the fields the agent owns
  (`AGENT_CLUSTER_FIELDS`); never ``addressRange``, taints or cordon. Never created by
  the agent: an operator registers the cluster with its address range.
* Lease C in the system namespace (its heartbeat), nobody else's.
* EndpointSlices whose ``spec.cluster`` is C, before and after the write, and every
  address in them inside C's ``spec.addressRange``, so an agent cannot point the gateway
  anywhere else; listing them only with the selector of its own cluster.
* Works in C's execution namespace: read, and write their status.
* Events about the objects above.

Each refusal says why, for the 403 and the audit log.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from flotilla.api.authz.attributes import Attributes
from flotilla.resources.labels import SelectorError, parse_selector
from flotilla.resources.wellknown import (
    CONTROLLER_LEADER_LEASE,
    LABEL_CLUSTER,
    SYSTEM_NAMESPACE,
    execution_namespace,
)

Object = dict[str, Any]
#: Reads the stored object a request is about (None if there is none).
Fetch = Callable[[str, str, str], Awaitable[Object | None]]

#: Cluster spec fields an agent registers (`flotilla.agent.snapshot.cluster_manifest`).
AGENT_CLUSTER_FIELDS = frozenset({"region", "zone", "provider", "ingressAddress", "runtime",
                                  "apiEndpoint"})


class Refused(Exception):
    """Why the agent restriction refuses a request."""


def _spec(obj: Object | None) -> Object:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def _meta(obj: Object | None) -> Object:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, dict) else {}


def address_problem(host: str, ranges: list[str], what: str) -> str | None:
    """Why ``host`` is not an address inside ``ranges`` (None when it is)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return f"{what} {host!r} is not an IP address"
    for cidr in ranges:
        try:
            if addr in ipaddress.ip_network(cidr, strict=False):
                return None
        except ValueError:
            continue
    shown = ", ".join(ranges) if ranges else "none (spec.addressRange is empty)"
    return f"{what} {host} is outside the cluster's address range ({shown})"


def _host_of(address: str) -> str:
    """``127.0.11.1``, ``127.0.11.1:80``, ``[::1]:80`` or a URL -> the host."""
    if "://" in address:
        return urlsplit(address).hostname or ""
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


class AgentRestriction:
    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch

    async def check(self, cluster: str, attrs: Attributes, body: Object | None) -> None:
        """Raise `Refused` unless the request is cluster ``cluster``'s own business."""
        check = getattr(self, "_" + attrs.resource.replace("/", "_"), None)
        if check is None:
            raise Refused(f"an agent may not touch {attrs.resource}")
        await check(cluster, attrs, body)

    async def _ranges(self, cluster: str) -> list[str]:
        stored = await self._fetch("Cluster", "", cluster)
        ranges = _spec(stored).get("addressRange") or []
        return [str(r) for r in ranges] if isinstance(ranges, list) else []

    # -- Cluster -----------------------------------------------------------------------

    async def _clusters(self, cluster: str, attrs: Attributes, body: Object | None) -> None:
        if attrs.name != cluster:
            raise Refused(f"an agent of cluster {cluster} may only touch Cluster {cluster}")
        if attrs.verb == "get":
            return
        if attrs.verb == "create":
            raise Refused(f"an agent may not create its Cluster: an operator registers "
                          f"Cluster {cluster} with its spec.addressRange first "
                          f"(flotilla apply; flotilla up does it)")
        new = _spec(body)
        stored = await self._fetch("Cluster", "", cluster)
        old = _spec(stored)
        changed = {k for k in {*old, *new} if old.get(k) != new.get(k)}
        foreign = sorted(changed - AGENT_CLUSTER_FIELDS)
        if foreign:
            raise Refused(f"an agent may not change spec.{', spec.'.join(foreign)} of "
                          f"its Cluster")
        ranges = [str(r) for r in old.get("addressRange") or []]
        for field in ("ingressAddress", "apiEndpoint"):
            value = new.get(field)
            if value and old.get(field) != value:
                problem = address_problem(_host_of(str(value)), ranges, f"spec.{field}")
                if problem:
                    raise Refused(problem)

    async def _clusters_status(self, cluster: str, attrs: Attributes,
                               body: Object | None) -> None:
        if attrs.name != cluster:
            raise Refused(f"an agent of cluster {cluster} may only write Cluster "
                          f"{cluster}'s status")

    # -- Lease -------------------------------------------------------------------------

    async def _leases(self, cluster: str, attrs: Attributes, body: Object | None) -> None:
        if attrs.namespace != SYSTEM_NAMESPACE or attrs.name != cluster:
            raise Refused(f"an agent of cluster {cluster} may only hold Lease "
                          f"{SYSTEM_NAMESPACE}/{cluster}")
        if attrs.name == CONTROLLER_LEADER_LEASE:  # a cluster named like it: no hijack
            raise Refused(f"Lease {SYSTEM_NAMESPACE}/{CONTROLLER_LEADER_LEASE} is the "
                          f"controller leader's; rename cluster {cluster}")

    # -- EndpointSlice -----------------------------------------------------------------

    async def _endpointslices(self, cluster: str, attrs: Attributes,
                              body: Object | None) -> None:
        if attrs.verb in ("list", "watch"):
            try:
                requirements = parse_selector(attrs.selector or None).requirements
            except SelectorError:
                requirements = ()
            if not any(r.key == LABEL_CLUSTER and r.operator == "In" and r.values == (cluster,)
                       for r in requirements):
                raise Refused(f"an agent of cluster {cluster} may list EndpointSlices only "
                              f"with labelSelector {LABEL_CLUSTER}={cluster}")
            return
        stored = await self._fetch("EndpointSlice", attrs.namespace, attrs.name)
        if stored is not None and _spec(stored).get("cluster") != cluster:
            raise Refused(f"EndpointSlice {attrs.namespace}/{attrs.name} belongs to cluster "
                          f"{_spec(stored).get('cluster')!r}, not {cluster}")
        if attrs.verb not in ("create", "update"):
            return
        spec = _spec(body)
        if spec.get("cluster") != cluster:
            raise Refused(f"an agent of cluster {cluster} may only write EndpointSlices "
                          f"whose spec.cluster is {cluster}, not {spec.get('cluster')!r}")
        if _meta(body).get("labels", {}).get(LABEL_CLUSTER, cluster) != cluster:
            raise Refused(f"label {LABEL_CLUSTER} must be {cluster}")
        ranges = await self._ranges(cluster)
        raw_ingress = spec.get("ingress")
        ingress: Object = raw_ingress if isinstance(raw_ingress, dict) else {}
        addresses = [("spec.ingress.address", str(ingress.get("address")))] \
            if ingress.get("address") else []
        for i, ep in enumerate(spec.get("endpoints") or []):
            if isinstance(ep, dict):
                addresses.append((f"spec.endpoints[{i}].address", str(ep.get("address"))))
        for what, host in addresses:
            problem = address_problem(_host_of(host), ranges, what)
            if problem:
                raise Refused(problem)

    # -- Work --------------------------------------------------------------------------

    async def _works(self, cluster: str, attrs: Attributes, body: Object | None) -> None:
        if attrs.namespace != execution_namespace(cluster):
            raise Refused(f"an agent of cluster {cluster} may only read Works in "
                          f"namespace {execution_namespace(cluster)}")

    async def _works_status(self, cluster: str, attrs: Attributes,
                            body: Object | None) -> None:
        if attrs.namespace != execution_namespace(cluster):
            raise Refused(f"an agent of cluster {cluster} may only write the status of "
                          f"Works in namespace {execution_namespace(cluster)}")

    # -- Event -------------------------------------------------------------------------

    async def _events(self, cluster: str, attrs: Attributes, body: Object | None) -> None:
        involved = (body or {}).get("involvedObject")
        involved = involved if isinstance(involved, dict) else {}
        kind, name = involved.get("kind"), str(involved.get("name") or "")
        ns = str(involved.get("namespace") or "")
        ok = ((kind in ("Cluster",) and name == cluster)
              or (kind == "Lease" and name == cluster and ns == SYSTEM_NAMESPACE)
              or (kind == "Work" and ns == execution_namespace(cluster)))
        if kind == "EndpointSlice":
            stored = await self._fetch("EndpointSlice", ns, name)
            ok = stored is not None and _spec(stored).get("cluster") == cluster
        if not ok:
            raise Refused(f"an agent of cluster {cluster} may only record Events about its "
                          f"own Cluster, Lease, EndpointSlices and Works")
