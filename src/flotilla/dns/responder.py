"""Answer one DNS packet: bytes in, bytes (or nothing) out. No I/O, so every transport,
the tests and the fuzzer exercise exactly the same code.

Rules this follows, all from the DNS RFCs an authoritative-only server must honour:

* never answer a response (QR=1) and drop what is too short to carry an ID: answering
  junk makes a reflector; anything longer that does not parse gets a header-only FORMERR;
* opcode other than QUERY → NOTIMP; not exactly one question → FORMERR; EDNS version > 0
  → BADVERS (RFC 6891);
* names outside our zones, classes other than IN, and zone transfers → REFUSED; RA is
  never set (no recursion), AA always is on authoritative answers;
* a name with no records of the type asked is NODATA, a name that does not exist (and has
  no descendants, RFC 8020) is NXDOMAIN; both carry the zone's SOA in authority with the
  negative TTL (RFC 2308);
* over UDP the answer is cut to 512 bytes, or the client's EDNS payload size capped at
  our own (1232, the DNS flag day value), with TC set so the client retries over TCP;
* ``ANY`` gets one synthesized HINFO "RFC8482" record, not every record of the name
  (RFC 8482): a full answer to a 30-byte query is what makes a server an amplifier;
* EDNS Client Subnet (RFC 7871) is echoed with a scope: the source prefix length when
  the client's location chose the answer, 0 when the answer is the same for everyone.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from flotilla.dns import fastpath
from flotilla.dns.geo import IPAddress
from flotilla.dns.select import Selector
from flotilla.dns.zone import AAAA, IN, NS, SOA, SRV, A, Apex, CompiledZones, Node

OUR_PAYLOAD = 1232
_TCP_MAX = 65535
_REFUSED_TYPES = frozenset(
    {dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.MAILA, dns.rdatatype.MAILB}
)
_GLUE_TYPES = frozenset({SRV, NS})
_RFC8482 = dns.rdata.from_text(IN, dns.rdatatype.HINFO, '"RFC8482" ""')


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened, for metrics. ``name`` is bounded: it is a name from the model, or a
    placeholder — never a raw client-chosen name, which would let anyone grow the
    metrics registry without limit."""

    name: str
    qtype: str
    rcode: str


DROPPED = Outcome("<dropped>", "-", "DROPPED")


class Responder:
    def __init__(
        self,
        zones: CompiledZones | None,
        selector: Selector | None = None,
        *,
        fast_path: bool = True,
    ) -> None:
        #: Swapped whole by `update`; a query reads it once, so it sees one model only.
        self.zones = zones
        self.selector = selector or Selector()
        #: Off only to compare the two paths in tests.
        self.fast_path = fast_path

    def update(self, zones: CompiledZones | None) -> None:
        self.zones = zones
        if zones is not None:
            self.selector.forget(
                {n.dynamic.host for n in zones.nodes.values() if n.dynamic is not None}
            )

    def respond(
        self, wire: bytes, client: str | None, *, tcp: bool
    ) -> tuple[bytes | None, Outcome]:
        """``client`` is the querying address as text; it is parsed only when a Geo
        answer needs it, so the common path does not pay for it."""
        if len(wire) < 12 or wire[2] & 0x80:
            return None, DROPPED
        zones = self.zones
        if self.fast_path and zones is not None:
            fast = fastpath.answer(wire, zones.fast, self.selector, client, tcp=tcp)
            if fast is not None:
                out, label, qtype = fast
                return out, _fast_outcome(label, qtype)
        try:
            query = dns.message.from_wire(wire, ignore_trailing=False)
        except Exception:  # any parse failure: dnspython raises many kinds; none may escape
            return header_only(wire, dns.rcode.FORMERR), Outcome("<malformed>", "-", "FORMERR")
        if query.opcode() != dns.opcode.QUERY:
            return header_only(wire, dns.rcode.NOTIMP), Outcome("<other>", "-", "NOTIMP")
        if len(query.question) != 1:
            return header_only(wire, dns.rcode.FORMERR), Outcome("<malformed>", "-", "FORMERR")
        return self._answer(query, client, tcp)

    def _answer(
        self, query: dns.message.Message, client: str | None, tcp: bool
    ) -> tuple[bytes | None, Outcome]:
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        qtype_text = _type_label(qtype)
        response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        ecs = _client_subnet(query)
        if query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)
            return _render(response, query, tcp), Outcome("<other>", qtype_text, "BADVERS")

        zones = self.zones
        if zones is None:  # not synced with the API yet: say so, and let the client retry
            return self._refuse(response, query, ecs, tcp, dns.rcode.SERVFAIL, qtype_text)
        apex = zones.apex_of(qname)
        if question.rdclass != IN or apex is None or qtype in _REFUSED_TYPES:
            return self._refuse(response, query, ecs, tcp, dns.rcode.REFUSED, qtype_text)
        response.flags |= dns.flags.AA
        node = zones.nodes.get(qname)
        wildcard = node is None and (node := zones.wildcard_for(qname, apex)) is not None
        scope = 0
        if node is not None:
            location = _location(ecs, client) if _is_geo(node) else None
            located = self._fill(response, node, qname, qtype, zones.ttl, location)
            if located and ecs is not None:
                scope = ecs.srclen
        label = qname.to_text().lower()
        if wildcard and node is not None and node.dynamic is not None:
            label = node.dynamic.host + "."  # the wildcard itself: labels stay bounded
        if not response.answer:
            exists = node is not None or qname in zones.existing
            if not exists:
                response.set_rcode(dns.rcode.NXDOMAIN)
                label = "<nxdomain>"
            response.authority.append(_soa_rrset(apex))
        _echo_ecs(response, query, ecs, scope)
        return _render(response, query, tcp), Outcome(
            label, qtype_text, dns.rcode.to_text(response.rcode())
        )

    @staticmethod
    def _refuse(
        response: dns.message.Message,
        query: dns.message.Message,
        ecs: dns.edns.ECSOption | None,
        tcp: bool,
        rcode: dns.rcode.Rcode,
        qtype_text: str,
    ) -> tuple[bytes | None, Outcome]:
        response.set_rcode(rcode)
        _echo_ecs(response, query, ecs, 0)
        return _render(response, query, tcp), Outcome(
            "<refused>", qtype_text, dns.rcode.to_text(rcode)
        )

    def _fill(
        self,
        response: dns.message.Message,
        node: Node,
        qname: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        ttl: int,
        client: IPAddress | None,
    ) -> bool:
        """Put the answer (and glue) in ``response``; True if the client's location
        decided it (so the ECS scope must be non-zero)."""
        if qtype == dns.rdatatype.ANY:
            response.answer.append(_rrset(qname, dns.rdatatype.HINFO, ttl, (_RFC8482,)))
            return False
        rdatas = node.records.get(qtype)
        # A global name's addresses come from its strategy only.
        if rdatas and not (node.dynamic is not None and qtype in (A, AAAA)):
            response.answer.append(_rrset(qname, qtype, ttl, rdatas))
        located = False
        gname = node.dynamic
        if gname is not None:
            families = (4,) if qtype == A else (6,) if qtype == AAAA else ()
            for version in families:
                chosen = self.selector.select(gname, version, client)
                located |= chosen.used_client_location
                if chosen.addresses:
                    rdtype = A if version == 4 else AAAA
                    rds = tuple(_address_rdata(rdtype, a) for a in chosen.addresses)
                    response.answer.append(_rrset(qname, rdtype, gname.ttl, rds))
        if qtype in _GLUE_TYPES and node.glue:
            seen: set[tuple[dns.name.Name, dns.rdatatype.RdataType]] = set()
            for owner, rdtype, rds in node.glue:
                if (owner, rdtype) in seen:
                    continue
                seen.add((owner, rdtype))
                response.additional.append(_rrset(owner, rdtype, ttl, rds))
        return located


_LABELLED_TYPES = frozenset({
    A, AAAA, SRV, SOA, NS, dns.rdatatype.ANY, dns.rdatatype.CNAME, dns.rdatatype.MX,
    dns.rdatatype.TXT, dns.rdatatype.PTR, dns.rdatatype.HTTPS, dns.rdatatype.SVCB,
    dns.rdatatype.CAA, dns.rdatatype.DS, dns.rdatatype.DNSKEY, dns.rdatatype.AXFR,
    dns.rdatatype.IXFR,
})


def _type_label(qtype: dns.rdatatype.RdataType) -> str:
    """The metrics label of a query type: 65536 possible values collapse to ~20."""
    return dns.rdatatype.to_text(qtype) if qtype in _LABELLED_TYPES else "OTHER"


@functools.lru_cache(maxsize=1024)
def _fast_outcome(label: str, qtype: int) -> Outcome:
    return Outcome(label, "A" if qtype == A else "AAAA", "NOERROR")


@functools.lru_cache(maxsize=4096)
def _address_rdata(rdtype: dns.rdatatype.RdataType, address: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, rdtype, address)


def _rrset(
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    ttl: int,
    rdatas: tuple[dns.rdata.Rdata, ...],
) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, IN, rdtype)
    rrset.update_ttl(ttl)
    for rd in rdatas:
        rrset.add(rd)
    return rrset


def _soa_rrset(apex: Apex) -> dns.rrset.RRset:
    return _rrset(apex.origin, SOA, apex.negative_ttl, (apex.soa,))


def _client_subnet(query: dns.message.Message) -> dns.edns.ECSOption | None:
    for option in query.options:
        if isinstance(option, dns.edns.ECSOption):
            return option
    return None


def _is_geo(node: Node) -> bool:
    return node.dynamic is not None and node.dynamic.strategy == "Geo"


def _location(ecs: dns.edns.ECSOption | None, client: str | None) -> IPAddress | None:
    """Where the client is: its subnet when the resolver told us (and did not opt out with
    a zero source prefix), else the address the query came from."""
    for text in (ecs.address if ecs is not None and ecs.srclen > 0 else None, client):
        if text is not None:
            try:
                return ipaddress.ip_address(text)
            except ValueError:
                continue
    return None


def _echo_ecs(
    response: dns.message.Message,
    query: dns.message.Message,
    ecs: dns.edns.ECSOption | None,
    scope: int,
) -> None:
    if ecs is None or query.edns < 0:
        return
    echoed = dns.edns.ECSOption(ecs.address, ecs.srclen, scope)
    response.use_edns(0, 0, OUR_PAYLOAD, query.payload, options=[echoed])


def _render(response: dns.message.Message, query: dns.message.Message, tcp: bool) -> bytes:
    if tcp:
        limit = _TCP_MAX
    elif query.edns >= 0:
        limit = max(512, min(query.payload, OUR_PAYLOAD))
    else:
        limit = 512
    # No shuffle: the order is the strategy's decision (round-robin rotation), and
    # dnspython would otherwise randomise it.
    return response.to_wire(max_size=limit, prefer_truncation=True, want_shuffle=False)


def header_only(wire: bytes, rcode: dns.rcode.Rcode = dns.rcode.SERVFAIL) -> bytes:
    """A 12-byte answer that only needs the query's header to be readable: the ID, the
    opcode and RD are echoed, every count is zero."""
    qid, flags = struct.unpack_from("!HH", wire)
    out_flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | (int(rcode) & 0xF)
    return struct.pack("!HHHHHH", qid, out_flags, 0, 0, 0, 0)


def truncated_reply(wire: bytes) -> bytes | None:
    """The smallest answer a client retries over TCP: the query's header and question
    with QR, AA and TC set and no records -- never larger than the query, so it reflects
    nothing. None when the query's question cannot be found (it is then dropped)."""
    if len(wire) < 12 or wire[2] & 0x80 or wire[4:6] != b"\x00\x01":
        return None
    end = 12
    while True:
        if end >= len(wire):
            return None
        length = wire[end]
        if length == 0:
            end += 1
            break
        if length & 0xC0:  # a compression pointer ends the name
            end += 2
            break
        end += 1 + length
    end += 4  # type and class
    if end > len(wire):
        return None
    qid, flags = struct.unpack_from("!HH", wire)
    out_flags = 0x8000 | (flags & 0x7800) | 0x0400 | 0x0200 | (flags & 0x0100)
    return struct.pack("!HHHHHH", qid, out_flags, 1, 0, 0, 0) + wire[12:end]
