"""A tiny HTTP server used as the container in runtime tests (stdlib only).

Listens on $HOST:$PORT. GET / answers "hello from <POD_NAME>", /env answers the
environment and argv as JSON, /healthz answers 200 unless the file named by
$HEALTH_FILE exists (then 500), so a test can flip health from outside.
Flags: --crash (exit 3 at once), --ignore-term (ignore SIGTERM), --child (start a
child process that sleeps, to test that the whole tree is terminated).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            unhealthy = os.path.exists(os.environ.get("HEALTH_FILE", "/nonexistent"))
            self._send(500 if unhealthy else 200, b"unhealthy" if unhealthy else b"ok")
        elif self.path == "/env":
            body = json.dumps({"env": dict(os.environ), "argv": sys.argv[1:]}).encode()
            self._send(200, body)
        else:
            self._send(200, f"hello from {os.environ.get('POD_NAME', '?')}".encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    args = sys.argv[1:]
    if "--crash" in args:
        print("crashing as asked", flush=True)
        sys.exit(3)
    if "--ignore-term" in args:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "--child" in args:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"),
                                  int(os.environ["PORT"])), Handler)
    print(f"listening on {server.server_address}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
