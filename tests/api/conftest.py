"""A real API server process per test module (or per test, where a test kills it)."""

from __future__ import annotations

import os
import re
import selectors
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from flotilla.api.auth import ensure_admin_token
from flotilla.client.http import HttpClient
from flotilla.pki import PkiLayout, verifying_context
from tests.helpers import wait_for_sync

_LISTENING = re.compile(rb"listening on (https?://\S+)")


class ServerProcess:
    """``python -m flotilla.api`` in its own process group, on a random loopback port."""

    def __init__(self, data_dir: Path, *args: str, create_token: bool = True,
                 listen: str = "127.0.0.1:0") -> None:
        self.data_dir = data_dir
        self.listen = listen
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.stdout_lines: list[bytes] = []
        #: The CA the server's certificate is issued from (created at its first start).
        self.ca = PkiLayout(data_dir).ca_cert
        #: Created before the first start unless the test wants the server to print it.
        self.token = (ensure_admin_token(data_dir) or "") if create_token else ""

    def start(self, timeout: float = 15.0) -> None:
        log = (self.data_dir.parent / f"{self.data_dir.name}.server.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flotilla.api", "--data-dir", str(self.data_dir),
             "--listen", self.listen, *self.args],
            stdout=subprocess.PIPE, stderr=log, start_new_session=True,
        )
        log.close()
        self.url = self._read_url(timeout)
        wait_for_sync(self._ready, timeout=timeout, what="/readyz")

    def _read_url(self, timeout: float) -> str:
        assert self.proc is not None
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(deadline - time.monotonic(), 0)):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.stdout_lines.append(line)
                if line.startswith(b"Admin token"):
                    self.token = line.split()[-1].decode()
                if m := _LISTENING.search(line):
                    return m.group(1).decode()
        self.kill()
        raise AssertionError(f"server did not start; stdout: {self.stdout_lines}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2,
                             verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify`` needs for this server (its CA, once it is https)."""
        return verifying_context(self.ca) if self.url.startswith("https") else True

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def start_server(tmp: Path, *args: str) -> ServerProcess:
    server = ServerProcess(tmp / "data", *args)
    server.start()
    return server


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ServerProcess]:
    """Every module's shared server runs once on each store: the API on an etcd store
    (the session's etcd, under a key prefix of its own) must behave as on SQLite."""
    tmp = tmp_path_factory.mktemp("api")
    args: tuple[str, ...] = ()
    if request.param == "etcd":
        etcd = request.getfixturevalue("etcd_server")
        args = ("--store", f"{etcd.url}/{tmp.name}/")
    srv = start_server(tmp, *args)
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[HttpClient]:
    async with HttpClient(server.url, server.token, ca=server.ca) as c:
        yield c


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """Plain httpx with the token, for what the typed client would not send."""
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers(),
                                 timeout=10, verify=server.verify) as c:
        yield c
