"""`AsgiServer`: uvicorn on a socket the caller bound, as a `Component`.

uvicorn's own ``serve`` installs signal handlers and offers no "ready" moment; here
`start` returns once uvicorn's listeners are up (so a process prints "listening" only
when it is true), signals stay with `serve`, and `stop` runs uvicorn's graceful shutdown
after ``before_stop`` (the API server ends its never-ending watch responses there,
otherwise the graceful shutdown would wait for them). With ``tls`` the listener speaks
TLS only: the context comes from `flotilla.pki` (one TLS policy for every server), not
from uvicorn's own options.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Any

import uvicorn


class AsgiServer:
    def __init__(self, name: str, config: Callable[[], uvicorn.Config], sock: socket.socket,
                 *, before_stop: Callable[[], None] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        #: Called at start: the app may need what earlier components started.
        self._config = config
        self.server: uvicorn.Server | None = None
        self.sock = sock
        self._before_stop = before_stop
        self.tls = tls
        self._main: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        config = self._config()
        config.load()
        if self.tls is not None:
            config.ssl = self.tls
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)
        await self.server.startup(sockets=[self.sock])
        self._main = tasks.create_task(self._main_loop(), name=f"{self.name}: http")

    async def _main_loop(self) -> None:
        assert self.server is not None
        await self.server.main_loop()
        if not self._stopping:
            raise RuntimeError(f"{self.name}: the HTTP server stopped on its own")

    async def stop(self) -> None:
        self._stopping = True
        if self._before_stop is not None:
            self._before_stop()
        if self.server is not None:
            self.server.should_exit = True
            if self._main is not None:
                await asyncio.gather(self._main, return_exceptions=True)
            if self.server.started:
                cutter = (asyncio.ensure_future(self._cut_tls_closes())
                          if self.tls is not None else None)
                try:
                    await self.server.shutdown(sockets=[self.sock])
                finally:
                    if cutter is not None:
                        cutter.cancel()
        self.sock.close()

    async def _cut_tls_closes(self) -> None:
        """During shutdown, end every TLS connection that is closing and has flushed its
        last bytes, without waiting for the peer's close_notify. An idle keep-alive
        connection in a client's pool is read by nobody, so the TLS close handshake
        would hold the graceful shutdown until its timeout (a restarted server would
        stay away for seconds, long enough for clusters to look dead)."""
        assert self.server is not None
        while True:
            for connection in list(self.server.server_state.connections):
                # uvloop's TLS transport is not an asyncio.Transport subclass: duck-typed.
                transport: Any = getattr(connection, "transport", None)
                if (transport is not None and transport.is_closing()
                        and transport.get_write_buffer_size() == 0):
                    transport.abort()
            await asyncio.sleep(0.05)
