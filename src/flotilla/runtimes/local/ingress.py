"""The cluster ingress: one TCP listener per Service port on the cluster's own loopback
address, forwarding each connection to a ready pod of the Service, round robin.

It works at TCP level (not HTTP) so any protocol a Service carries passes through, and
a connection already forwarded is never cut when pods change: only new connections see
the new endpoint set, as with kube-proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

#: (namespace, service, service port name)
Route = tuple[str, str, str]
#: route -> a ready backend (address, port), or None when the Service has none
Picker = Callable[[Route], tuple[str, int] | None]


class Ingress:
    def __init__(self, address: str, pick: Picker) -> None:
        self.address = address
        self._pick = pick
        self._listeners: dict[int, tuple[Route, asyncio.Server]] = {}
        self._connections: set[asyncio.Task[None]] = set()
        #: port -> why it could not be exposed (e.g. already in use)
        self.errors: dict[int, str] = {}

    @property
    def ports(self) -> dict[int, Route]:
        return {port: route for port, (route, _) in self._listeners.items()}

    async def sync(self, wanted: dict[int, Route]) -> None:
        """Listen on exactly ``wanted`` ports (port -> route)."""
        for port, (route, server) in list(self._listeners.items()):
            if wanted.get(port) != route:
                server.close()
                del self._listeners[port]
        self.errors = {p: e for p, e in self.errors.items() if p in wanted}
        for port, route in wanted.items():
            if port in self._listeners:
                continue
            try:
                server = await asyncio.start_server(
                    functools.partial(self._accept, route=route), self.address, port,
                    reuse_address=True)
            except OSError as exc:
                self.errors[port] = f"cannot listen on {self.address}:{port}: {exc.strerror}"
                log.warning("ingress: %s", self.errors[port])
                continue
            self.errors.pop(port, None)
            self._listeners[port] = (route, server)

    async def close(self) -> None:
        for _, server in self._listeners.values():
            server.close()
        self._listeners.clear()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                route: Route) -> None:
        task = asyncio.get_running_loop().create_task(self._forward(reader, writer, route))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       route: Route) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            target = self._pick(route)
            if target is None:
                return  # no ready endpoint: refuse by closing, as kube-proxy rejects
            async with asyncio.timeout(5.0):
                upstream_reader, upstream = await asyncio.open_connection(*target)
            upstream_writer = upstream
            await asyncio.gather(_pipe(reader, upstream), _pipe(upstream_reader, writer))
        except (OSError, TimeoutError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
    finally:
        with contextlib.suppress(OSError):
            await writer.drain()
