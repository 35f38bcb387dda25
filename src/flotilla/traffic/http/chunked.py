"""Find where a chunked body ends while passing its bytes through untouched.

Why not decode and re-encode: the proxy forwards chunked bodies as they are (both sides
speak HTTP/1.1), which is cheaper and keeps chunk boundaries; it only needs to know where
the message ends (to reuse the connection, and to split a pipelined next request) and to
reject malformed framing (request smuggling is born from lenient chunk parsing).
"""

from __future__ import annotations

import re

_SIZE, _DATA, _DATA_CR, _DATA_LF, _TRAILER = range(5)
MAX_LINE = 4096
#: All trailer lines of one body together.
MAX_TRAILERS = 16384
#: RFC 9112 7.1: chunk-size [ BWS ";" chunk-ext ] CRLF, strictly: no whitespace before
#: the size, no sign, no "0x", at most 15 hex digits (no overflow), and no control
#: character in an extension. Parsers that disagree on any of these are how a body
#: smuggles a second request past a proxy, so anything else is refused.
_SIZE_LINE = re.compile(rb"([0-9a-fA-F]{1,15})(?:[ \t]*;[\t\x20-\x7e\x80-\xff]*)?\r\n")
#: A trailer field: token ":" value, no obs-fold (a line starting with whitespace), no
#: control characters.
_TRAILER_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n")
#: Fields that must not appear as trailers (RFC 9110 6.5.1): framing, routing, and what
#: a backend could merge into the head it already acted on.
_FORBIDDEN_TRAILERS = frozenset({b"content-length", b"transfer-encoding", b"host",
                                 b"content-type", b"content-encoding", b"trailer",
                                 b"connection", b"te"})


class ChunkedError(ValueError):
    pass


class ChunkedScanner:
    __slots__ = ("_line", "_remaining", "_state", "_trailers")

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0
        self._line = bytearray()
        self._trailers = 0

    def feed(self, data: bytes, pos: int = 0) -> int:
        """Consume ``data[pos:]``; return the index just past the body's end, or -1 when
        the body continues in later data. Raises `ChunkedError` on bad framing."""
        n = len(data)
        while pos < n:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, n - pos)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _DATA_CR
            elif state in (_DATA_CR, _DATA_LF):
                expect = 13 if state == _DATA_CR else 10
                if data[pos] != expect:
                    raise ChunkedError("chunk data not followed by CRLF")
                pos += 1
                self._state = _DATA_LF if state == _DATA_CR else _SIZE
            else:  # a size line or a trailer line
                end = data.find(b"\n", pos)
                if end < 0:
                    self._line += data[pos:]
                    if len(self._line) > MAX_LINE:
                        raise ChunkedError("chunk size line too long")
                    return -1
                line = bytes(self._line) + data[pos:end + 1] if self._line else data[pos:end + 1]
                self._line.clear()
                pos = end + 1
                if len(line) > MAX_LINE:
                    raise ChunkedError("chunk size line too long")
                if not line.endswith(b"\r\n"):
                    raise ChunkedError("chunk line not terminated by CRLF")
                if state == _TRAILER:
                    if line == b"\r\n":
                        self._state = _SIZE
                        self._trailers = 0
                        return pos
                    self._trailer(line)
                    continue
                m = _SIZE_LINE.fullmatch(line)
                if m is None:
                    raise ChunkedError(f"bad chunk size line {line[:20]!r}")
                size = int(m.group(1), 16)
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._remaining = size
                    self._state = _DATA
        return -1

    def _trailer(self, line: bytes) -> None:
        self._trailers += len(line)
        if self._trailers > MAX_TRAILERS:
            raise ChunkedError("trailers too large")
        if _TRAILER_LINE.fullmatch(line) is None:
            raise ChunkedError(f"bad trailer line {line[:20]!r}")
        name = line[:line.index(b":")].lower()
        if name in _FORBIDDEN_TRAILERS:
            raise ChunkedError(f"{name.decode()} is not allowed as a trailer")
