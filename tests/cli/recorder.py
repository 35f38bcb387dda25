"""A tiny HTTPS server on loopback that answers every GET with an empty list and records
who sent which ``Authorization`` header: what a server named by a stranger's
``.flotilla/up.json`` would see of our credentials. Its certificate comes from one test
CA (`recorder_ca`), which a test hands to the CLI as it would a server's CA."""

from __future__ import annotations

import functools
import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from flotilla.pki import CertificateAuthority, server_ssl_context


@functools.cache
def _recorder_pki() -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, key) for every recorder, made once."""
    folder = Path(tempfile.mkdtemp(prefix="recorder-pki-"))
    ca = CertificateAuthority.create("recorder-ca")
    ca.save(folder)
    ca.issue_server("recorder", ["127.0.0.1", "localhost"]).write(
        folder / "server.crt", folder / "server.key")
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def recorder_ca() -> Path:
    return _recorder_pki()[0]


class Recorder:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        host, port = server.server_address[:2]
        self.url = f"https://{host!s}:{port}"
        self.ca = recorder_ca()
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
    _ca, cert, key = _recorder_pki()
    server.socket = server_ssl_context(cert, key).wrap_socket(server.socket, server_side=True)
    rec = Recorder(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
