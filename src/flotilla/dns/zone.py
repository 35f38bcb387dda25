"""Compile a `DnsModel` into the lookup tables the responder reads: one dict per query.

Everything that does not depend on the client (SOA, NS, clusterset.local records, SRV
and their glue) is turned into dnspython rdata once per model update, so a query costs a
dict lookup. Global names keep a reference to their `GlobalName`; their addresses are
chosen per query by `flotilla.dns.select`.

The set of *existing* names includes empty non-terminals (``svc.clusterset.local``,
``_tcp.shop.default.svc.clusterset.local``): RFC 8020 says a name with children exists,
so a query for it is NODATA, not NXDOMAIN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from flotilla.dns import fastpath
from flotilla.dns.fastpath import FastEntry
from flotilla.dns.model import CLUSTERSET_ZONE, ClusterBackend, DnsModel, GlobalName, to_label

A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
SRV = dns.rdatatype.SRV
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
IN = dns.rdataclass.IN

Records = dict[dns.rdatatype.RdataType, tuple[dns.rdata.Rdata, ...]]
Glue = tuple[tuple[dns.name.Name, dns.rdatatype.RdataType, tuple[dns.rdata.Rdata, ...]], ...]
NodeFactory = Callable[[dns.name.Name], "_Builder"]


@dataclass(frozen=True, slots=True)
class Node:
    """What one owner name has: static records, glue for them, or a dynamic global name."""

    records: Records = field(default_factory=dict)
    glue: Glue = ()
    dynamic: GlobalName | None = None


@dataclass(frozen=True, slots=True)
class Apex:
    origin: dns.name.Name
    soa: dns.rdata.Rdata
    ns: tuple[dns.rdata.Rdata, ...]
    negative_ttl: int


@dataclass(frozen=True, slots=True)
class CompiledZones:
    ttl: int
    apexes: tuple[Apex, ...]
    nodes: Mapping[dns.name.Name, Node]
    existing: frozenset[dns.name.Name]
    #: Names by lower-case wire-format name, for `flotilla.dns.fastpath`.
    fast: Mapping[bytes, FastEntry] = field(default_factory=dict)

    def wildcard_for(self, qname: dns.name.Name, apex: Apex) -> Node | None:
        """The ``*.<closest encloser>`` node that synthesises ``qname`` (RFC 4592), if any.

        Only for names that do not exist: a wildcard never covers an existing name, nor
        an empty non-terminal."""
        if qname in self.existing:
            return None
        encloser = qname.parent()
        while encloser not in self.existing and encloser != apex.origin:
            encloser = encloser.parent()
        return self.nodes.get(dns.name.Name((b"*", *encloser.labels)))

    def apex_of(self, qname: dns.name.Name) -> Apex | None:
        """The most specific zone holding ``qname``, or None (we are not authoritative)."""
        best: Apex | None = None
        for apex in self.apexes:
            if qname.is_subdomain(apex.origin) and (
                best is None or len(apex.origin) > len(best.origin)
            ):
                best = apex
        return best


def compile_zones(
    model: DnsModel, *, serial: int = 1, ns_addresses: Iterable[str] = ()
) -> CompiledZones:
    """Build lookup tables; ``serial`` goes in the SOA so secondaries see every change."""
    ttl = model.ttl
    zone = dns.name.from_text(model.zone)
    clusterset = dns.name.from_text(CLUSTERSET_ZONE)
    ns_name = dns.name.from_text("ns", zone)
    nodes: dict[dns.name.Name, _Builder] = {}

    def node(name: dns.name.Name) -> _Builder:
        return nodes.setdefault(name, _Builder())

    apexes = tuple(_apex(origin, ns_name, serial, ttl) for origin in (zone, clusterset))
    for apex in apexes:
        node(apex.origin).add(SOA, apex.soa)
        for rd in apex.ns:
            node(apex.origin).add(NS, rd)
    ns_addrs = tuple(ns_addresses)
    for addr in ns_addrs:
        node(ns_name).add(*_address_rdata(addr))
    ns_glue = _glue(ns_name, ns_addrs)
    for apex in apexes:
        node(apex.origin).glue += ns_glue

    for host, gname in model.names.items():
        node(dns.name.from_text(host)).dynamic = gname

    for (ns, svc), exported in model.services.items():
        base = dns.name.from_text(f"{svc}.{ns}.svc", clusterset)
        node(base)  # an exported service exists even with no healthy cluster (NODATA)
        for backend in exported.backends:
            for addr in backend.ingress:
                node(base).add(*_address_rdata(addr))
            _add_backend(node, base, backend)
        _add_srv(node, base, base, exported.backends)

    existing: set[dns.name.Name] = set()
    for name in nodes:
        apex = next(a for a in apexes if name.is_subdomain(a.origin))
        n = name
        while n not in existing and n.is_subdomain(apex.origin):
            existing.add(n)
            n = n.parent()
    frozen = {name: b.freeze() for name, b in nodes.items()}
    return CompiledZones(
        ttl=ttl,
        apexes=apexes,
        nodes=frozen,
        existing=frozenset(existing),
        fast=_fast_table(frozen, ttl),
    )


def _fast_table(nodes: Mapping[dns.name.Name, Node], ttl: int) -> dict[bytes, FastEntry]:
    """Global names, and every static name with address records (clusterset.local)."""
    table: dict[bytes, FastEntry] = {}
    for name, node in nodes.items():
        key = name.to_wire(canonicalize=True)
        assert key is not None  # to_wire without a file returns the bytes
        if node.dynamic is not None:
            table[key] = node.dynamic
        elif A in node.records or AAAA in node.records:
            table[key] = fastpath.static_answer(name.to_text().lower(), ttl, {
                int(t): [rd.to_wire() or b"" for rd in node.records.get(t, ())]
                for t in (A, AAAA)
            })
    return table


class _Builder:
    def __init__(self) -> None:
        self.records: dict[dns.rdatatype.RdataType, dict[dns.rdata.Rdata, None]] = {}
        self.glue: Glue = ()
        self.dynamic: GlobalName | None = None

    def add(self, rdtype: dns.rdatatype.RdataType, rdata: dns.rdata.Rdata) -> None:
        self.records.setdefault(rdtype, {})[rdata] = None

    def freeze(self) -> Node:
        return Node(
            records={t: tuple(rds) for t, rds in self.records.items()},
            glue=self.glue,
            dynamic=self.dynamic,
        )


def _apex(origin: dns.name.Name, ns_name: dns.name.Name, serial: int, ttl: int) -> Apex:
    # refresh 60, retry 10, expire 3600; minimum = the negative-caching TTL (RFC 2308)
    hostmaster = dns.name.from_text("hostmaster", origin)
    soa = _rdata(SOA, f"{ns_name} {hostmaster} {serial % 2**32} 60 10 3600 {ttl}")
    return Apex(
        origin=origin,
        soa=soa,
        ns=(_rdata(NS, ns_name.to_text()),),
        negative_ttl=ttl,
    )


def _address_rdata(addr: str) -> tuple[dns.rdatatype.RdataType, dns.rdata.Rdata]:
    rdtype = AAAA if ":" in addr else A
    return rdtype, _rdata(rdtype, addr)


def _rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, rdtype, text)


def _glue(name: dns.name.Name, addresses: Iterable[str]) -> Glue:
    by_type: dict[dns.rdatatype.RdataType, list[dns.rdata.Rdata]] = {}
    for addr in addresses:
        rdtype, rd = _address_rdata(addr)
        by_type.setdefault(rdtype, []).append(rd)
    return tuple((name, t, tuple(rds)) for t, rds in by_type.items())


def _add_backend(node: NodeFactory, base: dns.name.Name, backend: ClusterBackend) -> None:
    """``CLUSTER.base`` = that cluster's endpoints; ``POD.CLUSTER.base`` = one endpoint."""
    cluster_name = dns.name.Name((_label(backend.cluster), *base.labels))
    node(cluster_name)
    for ep in backend.endpoints:
        node(cluster_name).add(*_address_rdata(ep.address))
        node(dns.name.Name((ep.pod.encode(), *cluster_name.labels))).add(
            *_address_rdata(ep.address)
        )
    _add_srv(node, cluster_name, base, (backend,))


def _add_srv(
    node: NodeFactory,
    base: dns.name.Name,
    service: dns.name.Name,
    backends: Iterable[ClusterBackend],
) -> None:
    """``_PORT._PROTO.base`` SRV → ``POD.CLUSTER.service`` for every ready endpoint."""
    for backend in backends:
        cluster_name = dns.name.Name((_label(backend.cluster), *service.labels))
        for ep in backend.endpoints:
            target = dns.name.Name((ep.pod.encode(), *cluster_name.labels))
            for port in ep.ports:
                if not port.name:
                    continue  # SRV names need a port name, as in Kubernetes
                owner = dns.name.from_text(f"_{port.name}._{port.protocol.lower()}", base)
                b = node(owner)
                b.add(SRV, _rdata(SRV, f"0 1 {port.port} {target}"))
                b.glue += _glue(target, (ep.address,))


def _label(text: str) -> bytes:
    return to_label(text).encode()


