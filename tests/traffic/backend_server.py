"""A tiny HTTP/1.1 backend for the gateway tests, run as a real subprocess.

``python backend_server.py NAME`` binds 127.0.0.1:0 (or ``--port``), prints ``READY PORT``
and serves until killed. Behaviour per request through the query string:
``status=N`` answers N, ``sleep=S`` waits S seconds first, ``size=N`` sends N bytes,
``chunked=1`` sends the body chunked (not to HTTP/1.0), ``close=1`` without a length,
ending it by closing; POST/PUT echo the request body (content-length or
chunked) with its sha256 in ``x-body-sha256``. Behaviour for all later requests through
``/control?fail=N`` (answer N to everything but /control), ``/control?slow=S``,
``/control?die=1`` (the next response sends its head alone, then the process exits: an
endpoint killed mid-response) and ``/control?reset=1`` (clear fail and slow).
``/healthz`` answers 200 unless failing. ``stall=S`` (with ``size=N``) sends the head and
the first KiB, then waits S seconds before the rest (an upstream gone quiet mid-body).
Request headers the gateway sets come back as ``x-seen-<name>`` (and how many
traceparent headers arrived as ``x-seen-traceparent-count``).
``/control?seen=1`` answers the requests served so far (``METHOD PATH`` per line, in the
order their heads were read, /control excluded): what really reached the backend.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME = sys.argv[1] if len(sys.argv) > 1 else "backend"
STATE: dict[str, float] = {"fail": 0, "slow": 0.0, "die": 0}
LOCK = threading.Lock()
SEEN: list[str] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    die_after_head = False

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/control":
            with LOCK:
                SEEN.append(f"{self.command} {url.path}")
        body = self._read_body()
        if url.path == "/control":
            if "seen" in q:
                with LOCK:
                    seen = "".join(f"{line}\n" for line in SEEN).encode()
                self._send(200, seen)
                return
            with LOCK:
                if "fail" in q:
                    STATE["fail"] = int(q["fail"])
                if "slow" in q:
                    STATE["slow"] = float(q["slow"])
                if "die" in q:
                    STATE["die"] = 1
                if "reset" in q:
                    STATE.update(fail=0, slow=0.0)
            self._send(200, b"ok\n")
            return
        fail, slow = STATE["fail"], STATE["slow"]
        delay = float(q.get("sleep", slow))
        if delay and url.path != "/healthz":
            time.sleep(delay)
        if fail:
            self._send(int(fail), b"failing\n")
            return
        status = int(q.get("status", 200))
        if self.command in ("POST", "PUT"):
            out = body
        elif "size" in q:
            out = (b"0123456789abcdef" * (int(q["size"]) // 16 + 1))[:int(q["size"])]
        else:
            out = f"{NAME} {self.command} {url.path}\n".encode()
        self.die_after_head = bool(STATE["die"]) and url.path != "/healthz"
        self._send(status, out, chunked=q.get("chunked") == "1", close=q.get("close") == "1",
                   stall=float(q.get("stall", 0)))

    def _send(self, status: int, body: bytes, chunked: bool = False,
              close: bool = False, stall: float = 0.0) -> None:
        self.send_response(status)
        self.send_header("x-backend", NAME)
        self.send_header("x-body-sha256", hashlib.sha256(body).hexdigest())
        seen = {k.lower(): v for k, v in self.headers.items()}
        for h in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via",
                  "connection", "te", "x-hop", "traceparent"):
            if h in seen:
                self.send_header(f"x-seen-{h}", seen[h])
        self.send_header("x-seen-traceparent-count",
                         str(len(self.headers.get_all("traceparent") or [])))
        if close:  # no length: the body ends when the connection closes
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        if chunked and self.request_version != "HTTP/1.0":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            step = 65536
            for i in range(0, len(body), step):
                part = body[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.die_after_head:
                self.wfile.flush()
                os._exit(1)
            if stall:
                self.wfile.write(body[:1024])
                self.wfile.flush()
                time.sleep(stall)
                body = body[1024:]
            if self.command != "HEAD":
                self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients (the gateway under test) reset connections on purpose: not news."""


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    server = Server(("127.0.0.1", port), Handler)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
