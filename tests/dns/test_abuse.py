"""The DNS server under abuse: ANY is not an amplifier, a flood from one source prefix
is rate-limited while other sources are answered, and idle or slow TCP clients cannot
lock out a real query. Real dig, real sockets, a flood from a separate process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from flotilla.dns.limits import DnsLimits
from flotilla.dns.ratelimit import ResponseRateLimiter
from flotilla.dns.responder import truncated_reply
from tests.dns.conftest import Serve, dig, model_of, needs_dig, run_dig
from tests.dns.objects import three_regions, traffic_policy
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
#: A second source address on loopback, in another /24 than 127.0.0.1.
OTHER_SOURCE = "127.0.1.1"


def _objects() -> dict[str, list[dict[str, object]]]:
    objects: dict[str, list[dict[str, object]]] = dict(three_regions())
    objects["traffic_policies"] = [traffic_policy("shop", ["shop.global.test"])]
    return objects


# -- ANY (RFC 8482) ---------------------------------------------------------------------

@needs_dig
@pytest.mark.parametrize("name", ["shop.global.test", "global.test",
                                  "shop.default.svc.clusterset.local"])
async def test_any_gets_one_small_hinfo_record_not_every_record(
        serve: Serve, name: str) -> None:
    server = await serve(model_of(_objects()))
    full = await dig(server.port, name, "A")
    assert full.status == "NOERROR"
    answer = await dig(server.port, name, "ANY")
    assert answer.status == "NOERROR"
    assert "aa" in answer.flags
    assert [(t, d) for _, _, t, d in answer.answer] == [("HINFO", '"RFC8482" ""')]
    assert answer.additional == []


async def test_any_answer_is_no_bigger_than_a_single_record_answer(serve: Serve) -> None:
    server = await serve(model_of(_objects()))
    query = dns.message.make_query("global.test", "ANY")
    out = server.answer(query.to_wire(), "127.0.0.1", "udp")
    assert out is not None
    reply = dns.message.from_wire(out)
    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.HINFO]
    assert len(out) < 100


# -- response-rate limiting ---------------------------------------------------------------

def test_rate_limiter_spends_a_bucket_per_prefix_and_refills_with_time() -> None:
    now = [0.0]
    rrl = ResponseRateLimiter(10, burst=5, clock=lambda: now[0])
    assert [rrl.allow("192.0.2.1") for _ in range(6)] == [True] * 5 + [False]
    assert not rrl.allow("192.0.2.200")  # the same /24 shares the bucket
    assert rrl.allow("192.0.3.1")  # another /24 does not
    assert rrl.allow("2001:db8::1")
    assert rrl.allow("2001:db8:0:1::1")
    now[0] += 0.1  # one answer's worth of refill at 10/s
    assert rrl.allow("192.0.2.7")
    assert not rrl.allow("192.0.2.7")
    now[0] += 100.0  # refills up to the burst, not beyond
    assert [rrl.allow("192.0.2.1") for _ in range(6)] == [True] * 5 + [False]


def test_rate_limiter_table_is_bounded() -> None:
    rrl = ResponseRateLimiter(10, max_prefixes=100, clock=lambda: 0.0)
    for i in range(5000):
        rrl.allow(f"10.{i // 256 % 256}.{i % 256}.1")
    assert len(rrl) == 100


def test_truncated_reply_echoes_the_question_with_tc_and_is_never_larger() -> None:
    for name, rdtype in [("shop.global.test", "A"), ("a" * 60 + ".global.test", "TXT")]:
        query = dns.message.make_query(name, rdtype, use_edns=0)
        wire = query.to_wire()
        out = truncated_reply(wire)
        assert out is not None
        assert len(out) <= len(wire)
        reply = dns.message.from_wire(out)
        assert reply.id == query.id
        assert reply.flags & dns.flags.TC
        assert reply.question == query.question
        assert not reply.answer
    assert truncated_reply(b"\x00" * 11) is None
    assert truncated_reply(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab") is None


@needs_dig
async def test_a_flood_from_one_source_is_limited_while_another_source_is_answered(
        serve: Serve, tmp_path: Path) -> None:
    # 2,000 queries/s: what the server answers on a loaded 2-core machine without its
    # socket buffer overflowing (a flood beyond the server's CPU drops everyone's
    # packets, limited or not; bench/dns_abuse_bench.py measures that regime).
    rate, burst, flood_rate = 200.0, 200.0, 2000
    server = await serve(model_of(_objects()),
                         limits=DnsLimits(rrl_rate=rate, rrl_burst=burst))
    seconds = 20.0  # at most: it is stopped once the other source has its answers
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.dns.flood", str(server.port), str(seconds), str(flood_rate),
        "shop.global.test", cwd=REPO, stdout=asyncio.subprocess.PIPE)
    try:
        assert flood.stdout is not None
        line = await asyncio.wait_for(flood.stdout.readline(), 20)
        assert line.strip() == b"LIMITED"  # the source is past its burst
        batch = tmp_path / "queries"
        batch.write_text("".join("shop.global.test A\nglobal.test SOA\n" for _ in range(25)))
        answers = await run_dig(server.port, "-b", OTHER_SOURCE, "+tries=3", "+time=2",
                                "-f", str(batch), timeout=60)
        during_flood = flood.returncode is None
        if during_flood:
            flood.terminate()
        out, _ = await asyncio.wait_for(flood.communicate(), 30)
    finally:
        if flood.returncode is None:
            flood.kill()
            await flood.wait()
    figures = json.loads(out.decode().strip().splitlines()[-1])
    print("flood from one source:", figures)
    assert during_flood, "the other source's queries ended after the flood: test proves nothing"
    assert len(answers) == 50
    assert all(a.status == "NOERROR" and not a.retried_tcp and a.answer for a in answers)
    # The flood got no more full answers than its bucket allows, the rest TC=1.
    allowed = burst + rate * figures["seconds"]
    assert figures["answered"] <= allowed * 1.1, figures
    assert figures["sent"] > burst, figures  # the flood went past its bucket
    assert figures["truncated"] > 0, figures  # and what was beyond it came back TC=1
    assert server.metrics.rate_limited._value.get() >= figures["truncated"]


@needs_dig
async def test_a_limited_real_client_retries_over_tcp_and_gets_its_answer(
        serve: Serve) -> None:
    server = await serve(model_of(_objects()), limits=DnsLimits(rrl_rate=1, rrl_burst=1))
    first = await dig(server.port, "shop.global.test", "A")
    assert first.status == "NOERROR"
    assert not first.retried_tcp
    second = await dig(server.port, "shop.global.test", "A")
    assert second.retried_tcp  # dig saw TC=1 and asked again over TCP
    assert second.status == "NOERROR"
    assert second.data("A")


# -- TCP ----------------------------------------------------------------------------------

def _hold_idle(port: int, source: str, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                     source_address=(source, 0))
        held.append(s)
    return held


@needs_dig
async def test_600_idle_tcp_clients_do_not_stop_a_new_query(serve: Serve) -> None:
    limits = DnsLimits(tcp_max_connections=512, tcp_max_per_source=32)
    server = await serve(model_of(_objects()), limits=limits)
    held = await asyncio.to_thread(_hold_idle, server.port, "127.0.0.1", 600)
    try:
        async def settled() -> bool:
            return len(server._connections) <= limits.tcp_max_per_source

        await wait_for(settled, what="idle connections of one source capped at 32")
        for source in ("127.0.0.1", OTHER_SOURCE):
            answer = await dig(server.port, "-b", source, "+tcp", "shop.global.test", "A")
            assert answer.status == "NOERROR"
            assert answer.data("A")
    finally:
        for s in held:
            s.close()


async def test_a_busy_tcp_connection_ends_at_its_lifetime(serve: Serve) -> None:
    server = await serve(model_of(_objects()),
                         limits=DnsLimits(tcp_lifetime=1.0, tcp_idle_timeout=10.0))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    wire = dns.message.make_query("shop.global.test", "A").to_wire()
    began = time.monotonic()
    closed = False
    try:
        while time.monotonic() - began < 10:  # bounded: the lifetime is 1 s
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            head = await asyncio.wait_for(reader.read(2), 5)
            if not head:
                closed = True
                break
            await reader.readexactly(int.from_bytes(head, "big"))
            await asyncio.sleep(0.1)  # a client's pace, not synchronisation
    except (ConnectionError, asyncio.IncompleteReadError):
        closed = True
    finally:
        writer.close()
    assert closed
    assert 0.9 <= time.monotonic() - began < 5
    assert server.metrics.tcp_closed.labels("lifetime")._value.get() == 1


async def test_a_peer_that_never_reads_is_cut_off_by_the_write_timeout(serve: Serve) -> None:
    server = await serve(model_of(_objects()), limits=DnsLimits(tcp_write_timeout=0.5))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    wire = dns.message.make_query("shop.global.test", "A", use_edns=0).to_wire()
    framed = (len(wire).to_bytes(2, "big") + wire) * 2000
    try:
        async def cut_off() -> bool:
            try:
                sock.send(framed)  # queries, never reading an answer
            except BlockingIOError:
                pass
            except OSError:
                return True
            return server.metrics.tcp_closed.labels("write_timeout")._value.get() >= 1

        await wait_for(cut_off, timeout=30, what="the server to drop the non-reading peer")
    finally:
        sock.close()
    answer = server.answer(dns.message.make_query("global.test", "SOA").to_wire(),
                           "127.0.0.1", "tcp")
    assert answer is not None  # and the server goes on answering


# -- a server that does not run for a moment ---------------------------------------------

def _listen_overflows() -> int:
    """The kernel's count (this network namespace) of connections refused for a full
    listen queue: each one cost a client a SYN retransmit, 1 s."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    raise AssertionError("no TcpExt in /proc/net/netstat")


async def test_a_burst_that_arrives_while_the_server_is_not_running_is_answered(
        serve: Serve) -> None:
    # A shared CPU takes the server off it for milliseconds at a time; a flood keeps
    # arriving meanwhile. What the kernel buffer cannot hold is dropped for every
    # source alike, before RRL could tell the flood from anyone else.
    server = await serve(model_of(_objects()), limits=DnsLimits(rrl_rate=0))
    count = 3000
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    with contextlib.suppress(OSError):  # past net.core.rmem_max where privileged
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 4 << 20)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(0.5)
    wire = bytearray(dns.message.make_query("shop.global.test", "A").to_wire())
    try:
        for i in range(count):  # the event loop is blocked here: the server is not running
            wire[0:2] = i.to_bytes(2, "big")
            sock.send(wire)

        def receive() -> set[int]:
            seen: set[int] = set()
            deadline = time.monotonic() + 30
            while len(seen) < count and time.monotonic() < deadline:
                try:
                    seen.add(int.from_bytes(sock.recv(4096)[:2], "big"))
                except TimeoutError:
                    continue
            return seen

        answered = await asyncio.to_thread(receive)
    finally:
        sock.close()
    assert len(answered) == count, f"{count - len(answered)} of {count} queries dropped"


async def test_a_crowd_of_connections_arriving_at_once_costs_no_client_a_retransmit(
        serve: Serve) -> None:
    limits = DnsLimits(tcp_max_connections=512, tcp_max_per_source=32)
    server = await serve(model_of(_objects()), limits=limits)
    before = _listen_overflows()
    crowd = []
    try:
        for i in range(600):  # connects complete in the kernel; the loop is blocked
            s = socket.socket()
            s.bind((f"127.0.2.{i % 30 + 1}", 0))
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", server.port))
            crowd.append(s)

        async def settled() -> bool:
            return len(server._connections) >= limits.tcp_max_connections

        await wait_for(settled, what="the server to admit the crowd up to its cap")
        answer = await dig(server.port, "-b", OTHER_SOURCE, "+tcp", "shop.global.test", "A")
        assert answer.status == "NOERROR"
        assert answer.data("A")
    finally:
        for s in crowd:
            s.close()
    assert _listen_overflows() == before, "the listen queue overflowed: SYNs were dropped"


async def test_a_slow_reader_cut_by_the_write_timeout_gets_a_reset(serve: Serve) -> None:
    # A peer that reads a little now and then must not be fed the kernel's queue after
    # the cut (an orphan socket trickling megabytes): the cut is a RST (SO_LINGER 0).
    server = await serve(model_of(_objects()), limits=DnsLimits(tcp_write_timeout=0.5))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    wire = dns.message.make_query("shop.global.test", "A", use_edns=0).to_wire()
    framed = (len(wire).to_bytes(2, "big") + wire) * 2000
    seen: list[str] = []  # what the peer's socket said: errors, or "data"
    try:
        async def timed_out() -> bool:
            try:
                sock.send(framed)
            except BlockingIOError:
                pass
            except OSError as exc:
                seen.append(repr(exc))
            return server.metrics.tcp_closed.labels("write_timeout")._value.get() >= 1

        await wait_for(timed_out, timeout=30, what="the write timeout to cut the peer")

        async def reset() -> bool:
            if any("ConnectionReset" in e for e in seen):
                return True  # the send side saw the RST first
            try:
                sock.recv(512)  # the slow reader's sip
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True
            except OSError as exc:
                seen.append(repr(exc))
                return False
            seen.append("data")
            return False
        await wait_for(reset, timeout=10, interval=0.05,
                       what=f"a RST to the slow reader, not {seen[-3:]}")
    finally:
        sock.close()
