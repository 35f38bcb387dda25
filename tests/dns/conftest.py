"""Fixtures for DNS tests: a server on a random loopback port, and the real `dig`."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from flotilla.dns.model import DnsModel, build_model
from flotilla.dns.server import DnsServer
from tests.dns.objects import ZONE

DIG = shutil.which("dig")
needs_dig = pytest.mark.skipif(DIG is None, reason="dig not installed (bind9-dnsutils)")


@dataclass
class DigAnswer:
    status: str = ""
    flags: set[str] = field(default_factory=set)
    answer: list[tuple[str, int, str, str]] = field(default_factory=list)
    authority: list[tuple[str, int, str, str]] = field(default_factory=list)
    additional: list[tuple[str, int, str, str]] = field(default_factory=list)
    client_subnet: str | None = None
    retried_tcp: bool = False

    def data(self, rdtype: str = "A") -> list[str]:
        return [d for _, _, t, d in self.answer if t == rdtype]


_SECTION = re.compile(r"^;; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:")


def parse_dig(text: str) -> list[DigAnswer]:
    """Parse dig's default output, one `DigAnswer` per response (batch mode gives many)."""
    answers: list[DigAnswer] = []
    current: DigAnswer | None = None
    section: str | None = None
    truncated = False
    for line in text.splitlines():
        if "Truncated, retrying in TCP mode" in line:
            truncated = True
        if "->>HEADER<<-" in line:
            current = DigAnswer(status=line.split("status: ")[1].split(",")[0],
                                retried_tcp=truncated)
            truncated = False
            answers.append(current)
            section = None
            continue
        if current is None:
            continue
        if line.startswith(";; flags:"):
            current.flags = set(line.split(";")[2].split(":")[1].split())
        elif line.startswith("; CLIENT-SUBNET:"):
            current.client_subnet = line.split(":", 1)[1].strip()
        elif m := _SECTION.match(line):
            section = m.group(1).lower()
        elif not line.strip():
            section = None
        elif section and not line.startswith(";"):
            name, ttl, _cls, rdtype, data = line.split(None, 4)
            getattr(current, section).append((name.lower(), int(ttl), rdtype, data))
    return answers


async def run_dig(port: int, *args: str, timeout: float = 20.0) -> list[DigAnswer]:
    """Run the real dig against 127.0.0.1:port; one try, short timeout, no recursion."""
    assert DIG is not None
    proc = await asyncio.create_subprocess_exec(
        DIG, "@127.0.0.1", "-p", str(port), "+norec", "+tries=1", "+time=3", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    answers = parse_dig(out.decode())
    assert answers, f"dig gave no answer: {out.decode()} {err.decode()}"
    return answers


async def dig(port: int, *args: str) -> DigAnswer:
    return (await run_dig(port, *args))[0]


Serve = Callable[..., Awaitable[DnsServer]]


def model_of(objects: Mapping[str, Any], **kw: Any) -> DnsModel:
    return build_model(ZONE, **objects, **kw)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start `DnsServer`s on random loopback ports; all are stopped at teardown."""
    servers: list[DnsServer] = []

    async def start(model: DnsModel | None, **kw: Any) -> DnsServer:
        server = DnsServer(model, listen="127.0.0.1:0", **kw)
        await server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.stop()
