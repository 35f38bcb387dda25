"""The admin listener: ``/metrics`` (Prometheus text), ``/healthz`` and ``/routes``.

A separate listener so scraping never competes with, or is exposed like, user traffic.
Tiny and stream-based: it serves a scrape every few seconds, not the hot path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


async def serve_admin(host: str, port: int, registry: CollectorRegistry,
                      routes: Callable[[], object]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = line.split()
            path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            if path == "/metrics":
                body, ctype, status = generate_latest(registry), CONTENT_TYPE_LATEST, "200 OK"
            elif path == "/healthz":
                body, ctype, status = b"ok\n", "text/plain", "200 OK"
            elif path == "/routes":
                body = json.dumps(routes(), indent=2).encode()
                ctype, status = "application/json", "200 OK"
            else:
                body, ctype, status = b"not found\n", "text/plain", "404 Not Found"
            writer.write(f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: "
                         f"{len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
