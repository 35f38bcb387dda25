"""A real API server without controllers, per module: the controllers under test run in
the test, on an HTTP client. A module that needs other server flags defines its own
`server` (conftest's `client` then talks to that one)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from flotilla.client.http import HttpClient
from tests.cli.serverproc import ServerProcess, api_only_args


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("controllers") / "state", *api_only_args())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[HttpClient]:
    async with HttpClient(server.url, server.token, ca=server.ca, timeout=5) as c:
        yield c
