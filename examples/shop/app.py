#!/usr/bin/env python3
"""The shop: a tiny HTTP service for Flotilla's demo (Python standard library only).

It tells who served the request (cluster, region, pod, version), so you can watch the
gateway spread users over clusters and fail over. Behaviour knobs, for demos of
rollouts and failover:
  SHOP_VERSION    shown in answers (default v1)
  SHOP_FAIL_RATE  share of requests answered 500 (default 0)
  SHOP_DELAY_MS   added latency per request (default 0)
  SHOP_BURN_MS    CPU time burned per request, for autoscaling demos (default 0)
"""

import json
import os
import random
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("SHOP_VERSION", "v1")
FAIL_RATE = float(os.environ.get("SHOP_FAIL_RATE", "0"))
DELAY = float(os.environ.get("SHOP_DELAY_MS", "0")) / 1000.0
BURN = float(os.environ.get("SHOP_BURN_MS", "0")) / 1000.0
WHO = {
    "cluster": os.environ.get("CLUSTER_NAME", "?"),
    "region": os.environ.get("CLUSTER_REGION", "?"),
    "pod": os.environ.get("POD_NAME", "?"),
    "version": VERSION,
    "tier": os.environ.get("SHOP_TIER", "core"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
            return
        if DELAY:
            time.sleep(DELAY)
        if BURN:  # this thread's own CPU time, so concurrent requests each burn BURN
            until = time.thread_time() + BURN
            while time.thread_time() < until:
                pass
        if FAIL_RATE and random.random() < FAIL_RATE:
            self._send(500, b'{"error": "injected failure"}\n', "application/json")
            return
        body = json.dumps({**WHO, "path": self.path}).encode() + b"\n"
        self._send(200, body, "application/json")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would drown the pod's log


def main() -> None:
    # HOST is the pod's address: 127.0.0.1 on a local cluster, the pod's own loopback IP
    # under the node agent of a Kubernetes member (where every pod listens on 8080)
    host = os.environ.get("HOST", "127.0.0.1")
    server = ThreadingHTTPServer((host, int(os.environ.get("PORT", "8080"))), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"shop {VERSION} serving on {host}:{server.server_address[1]} as {WHO}",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
