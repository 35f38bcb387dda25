"""Framing helpers: chunked-body scanning and header-block rewriting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.traffic.http.chunked import ChunkedError, ChunkedScanner
from flotilla.traffic.http.heads import rewrite_request, rewrite_response


def encode(chunks: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"


@settings(deadline=None)  # a shared machine: a slow example is not a failure
@given(st.lists(st.binary(max_size=300), max_size=8), st.binary(max_size=40),
       st.lists(st.integers(min_value=1, max_value=50), max_size=30))
def test_scanner_finds_the_end_however_the_bytes_are_split(
        chunks: list[bytes], after: bytes, cuts: list[int]) -> None:
    body = encode(chunks)
    data = body + after
    scanner = ChunkedScanner()
    pos, end = 0, -1
    for cut in [*cuts, len(data)]:
        piece = data[pos:pos + cut]
        if not piece:
            break
        found = scanner.feed(piece)
        if found >= 0:
            end = pos + found
            break
        pos += len(piece)
    assert end == len(body)


@pytest.mark.parametrize("bad", [b"zz\r\nhello\r\n", b"5\r\nhelloXX", b"5\nhello\r\n",
                                 b"-1\r\n", b"1" * 5000])
def test_scanner_rejects_bad_framing(bad: bytes) -> None:
    with pytest.raises(ChunkedError):
        ChunkedScanner().feed(bad)


def test_request_fast_path_appends_forwarding_headers_and_keeps_bytes() -> None:
    head = b"GET /a HTTP/1.1\r\nHost: shop.test\r\nX-Custom:  Odd  Spacing\r\n\r\n"
    out = rewrite_request(head, head.lower(), b"10.0.0.1", b"shop.test", False)
    assert out.startswith(head[:-2])
    assert out.endswith(b"x-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\n"
                        b"x-forwarded-host: shop.test\r\nvia: 1.1 flotilla\r\n\r\n")


def test_request_slow_path_drops_hop_by_hop_and_merges() -> None:
    head = (b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive, X-Private\r\n"
            b"X-Private: 1\r\nVia: 1.0 edge\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n")
    out = rewrite_request(head, head.lower(), b"2.2.2.2", b"a", True, trusted=True)
    assert out.startswith(b"GET / HTTP/1.0\r\n")  # so the upstream will not chunk
    assert b"x-private" not in out.lower()
    assert b"connection" not in out.lower()
    assert b"x-forwarded-for: 1.1.1.1, 2.2.2.2\r\n" in out  # a trusted proxy's: extended
    assert b"via: 1.0 edge, 1.1 flotilla\r\n" in out


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_client_forwarding_headers_are_replaced_unless_from_a_trusted_proxy(
        version: bytes) -> None:
    """A client cannot choose the address, scheme, host or port a backend is told."""
    head = (b"GET / HTTP/" + version + b"\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n"
            b"x-forwarded-proto: https\r\nX-Forwarded-Host: evil.test\r\n"
            b"X-Forwarded-Port: 443\r\nForwarded: for=6.6.6.6;proto=https\r\n"
            b"X-Forwarded-For: 7.7.7.7\r\n\r\n")
    for trusted, xff in ((False, b"2.2.2.2"), (True, b"6.6.6.6, 7.7.7.7, 2.2.2.2")):
        out = rewrite_request(head, head.lower(), b"2.2.2.2", b"a", version == b"1.0",
                              trusted=trusted)
        lines = out.lower().split(b"\r\n")
        assert [ln for ln in lines if ln.startswith(b"x-forwarded-for:")] == [
            b"x-forwarded-for: " + xff]
        assert [ln for ln in lines if ln.startswith(b"x-forwarded-proto:")] == [
            b"x-forwarded-proto: http"]
        assert [ln for ln in lines if ln.startswith(b"x-forwarded-host:")] == [
            b"x-forwarded-host: a"]
        assert not [ln for ln in lines if ln.startswith((b"x-forwarded-port:", b"forwarded:"))]
        assert b"evil" not in out
        assert (b"6.6.6.6" in out) == trusted


def test_response_drops_connection_headers_and_adds_extra() -> None:
    head = (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
            b"Content-Length: 2\r\n\r\n")
    out = rewrite_response(head, head.lower(), b"x-flotilla-cluster: east\r\n")
    assert out == (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                   b"x-flotilla-cluster: east\r\n\r\n")
