"""The hot path: a plain A/AAAA query for a served name, answered without dnspython.

Measured on this machine (docs/components/dns.md, "Benchmarks"), dnspython's parse +
build + render costs a few hundred times what slicing bytes does, and a GSLB's traffic is
almost entirely one shape of query: one question, class IN, type A or AAAA, for one of a
few global names, with or without a plain EDNS OPT. That shape, and only that one, is
answered here from bytes; anything else — a compression pointer, ECS, an EDNS version
other than 0, trailing bytes, a name we do not serve fast, an answer that would need
truncation or a NODATA — returns None and takes the general dnspython path, which is the
reference behaviour. tests/dns/test_fastpath.py checks that both paths give the same
answer for every query shape the fast path accepts.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flotilla.dns.model import GlobalName
from flotilla.dns.select import Selector

OPT = 41
ECS_CODE = 8
_A, _AAAA = 1, 28
_OPT_RR = b"\x00\x00\x29" + (1232).to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"
_HEADER = struct.Struct("!HHHHHH")


@dataclass(frozen=True, slots=True)
class StaticAnswer:
    """A name whose A/AAAA answer does not depend on the client (clusterset.local names):
    the answer records are rendered once per model, owner compressed to the question."""

    label: str  # the name as metrics show it, with the trailing dot
    records: Mapping[int, tuple[int, bytes]]  # qtype -> (record count, wire bytes)


FastEntry = GlobalName | StaticAnswer


def static_answer(label: str, ttl: int, rdatas: Mapping[int, Sequence[bytes]]) -> StaticAnswer:
    """Pre-render ``{qtype: [rdata wire bytes]}`` as answer records."""
    return StaticAnswer(label, {
        qtype: (len(rds), b"".join(
            b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, ttl, len(rd)) + rd for rd in rds))
        for qtype, rds in rdatas.items() if rds
    })


def answer(
    wire: bytes,
    names: Mapping[bytes, FastEntry],
    selector: Selector,
    client: str | None,
    *,
    tcp: bool,
) -> tuple[bytes, str, int] | None:
    """Answer bytes, the metrics label and the qtype — or None to use the general path."""
    size = len(wire)
    if size < 17:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & 0xFA00 or qdcount != 1 or ancount or nscount or arcount > 1:
        return None  # QR, opcode, TC set; or not exactly one question and at most OPT
    i = 12
    while True:
        length = wire[i]
        if length == 0:
            break
        if length & 0xC0:
            return None  # compression pointer or extended label in a query: be general
        i += length + 1
        if i >= size or i > 12 + 255:
            return None
    qend = i + 1
    if qend + 4 > size:
        return None
    qtype = (wire[qend] << 8) | wire[qend + 1]
    if (qtype != _A and qtype != _AAAA) or wire[qend + 2:qend + 4] != b"\x00\x01":
        return None
    limit = 65535 if tcp else 512
    end = qend + 4
    if arcount:
        payload = _plain_opt(wire, end)
        if payload is None:
            return None
        if not tcp:
            limit = max(512, min(payload, 1232))
    elif end != size:
        return None
    entry = names.get(wire[12:qend].lower())
    if entry is None:
        return None
    if isinstance(entry, StaticAnswer):
        found = entry.records.get(qtype)
        if found is None:
            return None  # NODATA needs the SOA: the general path builds it
        count, records = found
        label = entry.label
    else:
        location = _parse(client) if entry.strategy == "Geo" else None
        chosen = selector.select(entry, 4 if qtype == _A else 6, location).addresses
        if not chosen:
            return None
        rr_head = b"\xc0\x0c" + struct.pack("!HHI", qtype, 1, entry.ttl)
        count, records = len(chosen), b"".join(rr_head + _rdata(a) for a in chosen)
        label = entry.host + "."
    out = b"".join((
        _HEADER.pack(qid, 0x8400 | (flags & 0x0100), 1, count, 0, arcount),
        wire[12:end],
        records,
        _OPT_RR if arcount else b"",
    ))
    if len(out) > limit:
        return None  # truncation rules live in the general path
    return out, label, qtype


def _plain_opt(wire: bytes, at: int) -> int | None:
    """The requestor's payload size if ``wire[at:]`` is exactly one EDNS0 OPT record
    without an ECS option (other options, such as cookies, are ignored as the general
    path ignores them); else None."""
    if len(wire) < at + 11 or wire[at] != 0:
        return None
    rtype, payload, _ext, version, _flags, rdlen = struct.unpack_from("!HHBBHH", wire, at + 1)
    if rtype != OPT or version != 0 or at + 11 + rdlen != len(wire):
        return None
    i = at + 11
    while i < len(wire):
        if i + 4 > len(wire):
            return None
        code, olen = struct.unpack_from("!HH", wire, i)
        if code == ECS_CODE:
            return None
        i += 4 + olen
    return payload if i == len(wire) else None


@functools.lru_cache(maxsize=4096)
def _rdata(address: str) -> bytes:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    return len(packed).to_bytes(2, "big") + packed


def _parse(client: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if client is None:
        return None
    try:
        return ipaddress.ip_address(client)
    except ValueError:
        return None
