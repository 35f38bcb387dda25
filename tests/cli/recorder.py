"""A tiny HTTP server on loopback that answers every GET with an empty list and records
who sent which ``Authorization`` header: what a server named by a stranger's
``.flotilla/up.json`` would see of our credentials."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self.address = f"{host!s}:{port}"
        #: (path, Authorization header or None), in arrival order.
        self.requests: list[tuple[str, str | None]] = []

    @property
    def tokens(self) -> list[str | None]:
        return [auth for _, auth in self.requests]


@contextmanager
def recorder() -> Iterator[Recorder]:
    rec: Recorder

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rec.requests.append((self.path, self.headers.get("Authorization")))
            body = json.dumps({"kind": "List", "items": [],
                               "metadata": {"resourceVersion": "1"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec = Recorder(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
