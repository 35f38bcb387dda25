"""Find where a chunked body ends while passing its bytes through untouched.

Why not decode and re-encode: the proxy forwards chunked bodies as they are (both sides
speak HTTP/1.1), which is cheaper and keeps chunk boundaries; it only needs to know where
the message ends (to reuse the connection, and to split a pipelined next request) and to
reject malformed framing (request smuggling is born from lenient chunk parsing).
"""

from __future__ import annotations

_SIZE, _DATA, _DATA_CR, _DATA_LF, _TRAILER = range(5)
MAX_LINE = 4096
_HEX = frozenset(b"0123456789abcdefABCDEF")


class ChunkedError(ValueError):
    pass


class ChunkedScanner:
    __slots__ = ("_line", "_remaining", "_state")

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0
        self._line = bytearray()

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
                        return pos
                    continue
                size_text = line[:-2].split(b";", 1)[0].strip(b" \t")
                if not size_text or len(size_text) > 15 or not _HEX.issuperset(size_text):
                    raise ChunkedError(f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._remaining = size
                    self._state = _DATA
        return -1
