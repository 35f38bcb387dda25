"""Wire-level behaviour with raw sockets and dnspython: bad packets, opcodes, EDNS, TCP."""

from __future__ import annotations

import asyncio
import socket
import struct

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from flotilla.dns.limits import DnsLimits
from flotilla.dns.server import DnsServer
from tests.dns.conftest import Serve, model_of
from tests.dns.objects import three_regions, traffic_policy
from tests.helpers import wait_for


def _objects() -> dict[str, list[dict[str, object]]]:
    objects: dict[str, list[dict[str, object]]] = dict(three_regions())
    objects["traffic_policies"] = [traffic_policy("shop", ["shop.global.test"])]
    return objects


def _udp_blocking(port: int, payload: bytes, timeout: float) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


async def udp_raw(port: int, payload: bytes, timeout: float = 2.0) -> bytes | None:
    """Send raw bytes; the blocking socket runs in a thread so the server's loop runs."""
    return await asyncio.to_thread(_udp_blocking, port, payload, timeout)


async def query(port: int, name: str = "shop.global.test", rdtype: str = "A",
                **kw: object) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2)


async def test_garbage_gets_formerr_with_its_id_and_short_packets_are_dropped(
    serve: Serve,
) -> None:
    server = await serve(model_of(_objects()))
    garbage = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\xff\xfe\x01"
    reply = await udp_raw(server.port, garbage)
    assert reply is not None
    msg_id, flags = struct.unpack_from("!HH", reply)
    assert msg_id == 0xBEEF
    assert flags & 0x8000
    assert flags & 0xF == dns.rcode.FORMERR
    assert await udp_raw(server.port, b"\x00\x01\x02", timeout=0.3) is None
    assert (await query(server.port)).rcode() == dns.rcode.NOERROR


async def test_responses_are_never_answered(serve: Serve) -> None:
    server = await serve(model_of(_objects()))
    response = dns.message.make_response(dns.message.make_query("shop.global.test", "A"))
    assert await udp_raw(server.port, response.to_wire(), timeout=0.3) is None


async def test_unsupported_opcode_is_notimp(serve: Serve) -> None:
    server = await serve(model_of(_objects()))
    q = dns.message.make_query("shop.global.test", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    reply = await udp_raw(server.port, q.to_wire())
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOTIMP


async def test_two_questions_is_formerr(serve: Serve) -> None:
    server = await serve(model_of(_objects()))
    q = dns.message.make_query("shop.global.test", "A")
    q.question.append(dns.message.make_query("global.test", "SOA").question[0])
    reply = await udp_raw(server.port, q.to_wire())
    assert reply is not None
    assert reply[3] & 0xF == dns.rcode.FORMERR


async def test_edns_version_1_is_badvers_and_payload_is_advertised(serve: Serve) -> None:
    server = await serve(model_of(_objects()))
    bad = dns.message.make_query("shop.global.test", "A", use_edns=1)
    reply = await udp_raw(server.port, bad.to_wire())
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.BADVERS
    ok = await query(server.port, use_edns=0, payload=4096)
    assert ok.edns == 0
    assert ok.payload == 1232
    assert ok.flags & dns.flags.AA
    assert not ok.flags & dns.flags.RA


async def test_no_model_yet_is_servfail(serve: Serve) -> None:
    server = await serve(None)
    assert (await query(server.port)).rcode() == dns.rcode.SERVFAIL
    server.update(model_of(_objects()))
    assert (await query(server.port)).rcode() == dns.rcode.NOERROR


async def test_tcp_serves_several_queries_per_connection_then_idles_out(serve: Serve) -> None:
    server = await serve(model_of(_objects()), limits=DnsLimits(tcp_idle_timeout=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        queries = [dns.message.make_query(n, t) for n, t in
                   [("shop.global.test", "A"), ("global.test", "SOA"), ("example.com", "A")]]
        for q in queries:  # pipelined: all sent before any answer is read
            writer.write(q.to_wire(prepend_length=True))
        await writer.drain()
        rcodes = []
        for q in queries:
            size = int.from_bytes(await reader.readexactly(2), "big")
            answer = dns.message.from_wire(await reader.readexactly(size))
            assert answer.id == q.id
            rcodes.append(answer.rcode())
        assert rcodes == [dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.REFUSED]
        closed = await asyncio.wait_for(reader.read(1), timeout=5)  # idle timeout ends it
        assert closed == b""
    finally:
        writer.close()


async def test_zone_transfer_is_refused(serve: Serve) -> None:
    server = await serve(model_of(_objects()))
    q = dns.message.make_query("global.test", "AXFR")
    answer = await dns.asyncquery.tcp(q, "127.0.0.1", port=server.port, timeout=2)
    assert answer.rcode() == dns.rcode.REFUSED


async def test_metrics_count_queries_by_name_type_and_rcode(serve: Serve) -> None:
    server = await serve(model_of(_objects()), admin_listen="127.0.0.1:0")
    await query(server.port)
    await query(server.port, "random-junk-1234.global.test")
    assert server.admin_port is not None

    async def scrape() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.admin_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: dns\r\n\r\n")
        await writer.drain()
        body = (await reader.read()).decode()
        writer.close()
        return body

    async def counted() -> str:
        text = await scrape()
        return text if "flotilla_dns_answer_seconds_count" in text else ""

    text = await wait_for(counted, timeout=5, what="metrics")
    assert 'flotilla_dns_queries_total{name="shop.global.test.",rcode="NOERROR",type="A"} 1.0' \
        in text
    assert 'name="<nxdomain>",rcode="NXDOMAIN"' in text
    assert "random-junk" not in text  # client-chosen names never become label values
    assert 'flotilla_dns_answer_seconds_count{transport="udp"} 2.0' in text


def test_bad_geo_table_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        DnsServer(None, geo_table={"10.0.0.0/33": "x"})


async def test_aaaa_of_a_name_without_v6_is_nodata(serve: Serve) -> None:
    server = await serve(model_of(_objects()))
    answer = await query(server.port, rdtype="AAAA")
    assert answer.rcode() == dns.rcode.NOERROR
    assert not answer.answer
    assert answer.authority[0].rdtype == dns.rdatatype.SOA


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_serves_on_ipv6_loopback_with_aaaa_glue() -> None:
    async with DnsServer(model_of(_objects()), listen="[::1]:0") as server:
        udp = await dns.asyncquery.udp(dns.message.make_query("shop.global.test", "A"), "::1",
                                       port=server.port, timeout=2)
        assert len(udp.answer[0]) == 3
        tcp = await dns.asyncquery.tcp(dns.message.make_query("global.test", "NS"), "::1",
                                       port=server.port, timeout=2)
        assert [rd.address for rd in tcp.additional[0]] == ["::1"]
