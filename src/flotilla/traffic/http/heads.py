"""Header-block rewriting that forwards the client's bytes instead of rebuilding them.

Measured on this kind of machine: a proxy that forwards header bytes as received runs near
94% of HAProxy, one that rebuilds every header near 63%. So the common request (no
hop-by-hop or forwarding headers to merge) is forwarded as one slice plus the lines we
add; only a request carrying such headers takes the line-by-line path. One regex search
on the lower-cased block decides which path to take.
"""

from __future__ import annotations

import re

#: Hop-by-hop headers (RFC 9110 7.6.1) plus the forwarding headers we write ourselves.
_SLOW_REQ = re.compile(
    rb"\n(?:connection|keep-alive|proxy-connection|te|upgrade|trailer|proxy-authorization"
    rb"|proxy-authenticate|x-forwarded-(?:for|proto|host|port)|forwarded|via)[ \t]*:")
_SLOW_RESP = re.compile(
    rb"\n(?:connection|keep-alive|proxy-connection|te|upgrade|trailer|proxy-authenticate"
    rb"|x-flotilla-cluster)[ \t]*:")
_FORWARDING = re.compile(
    rb"\n(?:x-forwarded-(?:for|proto|host|port)|forwarded|via)[ \t]*:")
#: What a client says about the scheme, host and port it used: only the gateway knows
#: (a backend building URLs or security decisions from them must not read the client's).
_REPLACED = frozenset({b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
                       b"forwarded"})
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade",
                        b"trailer", b"proxy-authorization", b"proxy-authenticate"})


def header_value(low: bytes, name: bytes) -> bytes | None:
    """First value of ``name`` (lower-case, with the leading ``\\n`` and trailing ``:``)
    in the lower-cased block ``low``; None when absent."""
    i = low.find(name)
    if i < 0:
        return None
    start = i + len(name)
    return low[start:low.find(b"\r\n", start)].strip(b" \t")


def count_header(low: bytes, name: bytes) -> int:
    return low.count(name)


def connection_tokens(low: bytes) -> set[bytes]:
    tokens: set[bytes] = set()
    pos = 0
    while (i := low.find(b"\nconnection:", pos)) >= 0:
        end = low.find(b"\r\n", i + 1)
        tokens.update(t.strip(b" \t") for t in low[i + 12:end].split(b","))
        pos = end
    return tokens


_PLAIN_TOKENS = frozenset({b"keep-alive", b"close", b""})


def _cut_lines(head: bytes, low: bytes, pattern: re.Pattern[bytes]) -> list[bytes] | None:
    """``head`` without its header block end, cut around the lines ``pattern`` matches -
    or None when the Connection header names further headers to drop (then the caller
    takes the line-by-line path)."""
    if not connection_tokens(low) <= _PLAIN_TOKENS:
        return None
    parts, pos = [], 0
    for m in pattern.finditer(low):
        start = m.start() + 1
        parts.append(head[pos:start])
        pos = low.find(b"\r\n", start) + 2
    parts.append(head[pos:-2])
    return parts


def rewrite_request(head: bytes, low: bytes, client_ip: bytes, host: bytes,
                    http10: bool, proto: bytes = b"http", trusted: bool = False) -> bytes:
    """The head to send upstream: hop-by-hop removed, X-Forwarded-*/Via written by us
    (``proto``: the scheme the client used, ``http`` or ``https``).

    The client's own X-Forwarded-Proto/-Host/-Port and Forwarded are dropped, never
    passed on: only the gateway knows how the client reached it. Its X-Forwarded-For is
    extended only when the peer is a ``trusted`` proxy; anyone else's is replaced by the
    peer address, so a backend can believe the last entry it did not add itself."""
    tail = (b"x-forwarded-for: ", client_ip, b"\r\nx-forwarded-proto: ", proto, b"\r\n"
            b"x-forwarded-host: ", host, b"\r\nvia: 1.1 flotilla\r\n\r\n")
    if not http10:
        m = _SLOW_REQ.search(low)
        if m is None:
            return b"".join((head[:-2], *tail))
        if _FORWARDING.search(low) is None:  # only hop-by-hop lines to cut
            parts = _cut_lines(head, low, _SLOW_REQ)
            if parts is not None:
                return b"".join((*parts, *tail))
    drop = HOP_BY_HOP | connection_tokens(low) | _REPLACED
    lines = head[:-4].split(b"\r\n")
    # An HTTP/1.0 request stays 1.0 upstream: the upstream then answers with a length or
    # by closing, never chunked, which a 1.0 client could not read.
    out = [lines[0]]
    xff = via = b""
    for line in lines[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name in drop:
            continue
        if name == b"x-forwarded-for":
            if trusted:
                xff = (xff + b", " if xff else b"") + line.split(b":", 1)[1].strip()
            continue
        if name == b"via":
            via = (via + b", " if via else b"") + line.split(b":", 1)[1].strip()
            continue
        out.append(line)
    out.append(b"x-forwarded-for: " + (xff + b", " if xff else b"") + client_ip)
    out.append(b"x-forwarded-proto: " + proto)
    out.append(b"x-forwarded-host: " + host)
    out.append(b"via: " + (via + b", " if via else b"") + b"1.1 flotilla")
    out.append(b"\r\n")
    return b"\r\n".join(out)


def rewrite_response(head: bytes, low: bytes, extra: bytes) -> bytes:
    """The head to send the client: hop-by-hop removed, ``extra`` lines (each ending in
    CRLF: the cluster header, ``connection: close``) appended."""
    m = _SLOW_RESP.search(low)
    if m is None:
        return head[:-2] + extra + b"\r\n" if extra else head
    # What nearly every upstream sends (nginx always does): one "connection: keep-alive"
    # line and nothing else to drop. Cut it with two slices.
    i = m.start()
    if low.startswith(b"\nconnection: keep-alive\r\n", i) and \
            _SLOW_RESP.search(low, i + 24) is None:
        return b"".join((head[:i + 1], head[i + 25:-2], extra, b"\r\n"))
    parts = _cut_lines(head, low, _SLOW_RESP)  # typically "connection: keep-alive"
    if parts is not None:
        return b"".join((*parts, extra, b"\r\n"))
    drop = HOP_BY_HOP | connection_tokens(low) | {b"x-flotilla-cluster"}
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [ln for ln in lines[1:]
                         if ln.split(b":", 1)[0].strip().lower() not in drop]
    return b"\r\n".join(kept) + b"\r\n" + extra + b"\r\n"


_REASONS = {308: b"Permanent Redirect", 400: b"Bad Request", 404: b"Not Found",
            408: b"Request Timeout",
            413: b"Payload Too Large", 431: b"Request Header Fields Too Large",
            500: b"Internal Server Error", 502: b"Bad Gateway",
            503: b"Service Unavailable", 504: b"Gateway Timeout"}


def error_response(status: int, message: str, close: bool = True,
                   extra: bytes = b"") -> bytes:
    """A short plain-text answer generated by the gateway itself."""
    body = message.encode() + b"\n"
    return b"".join((
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body),
        b"x-flotilla-error: 1\r\n", extra,
        b"connection: close\r\n\r\n" if close else b"\r\n", body))
