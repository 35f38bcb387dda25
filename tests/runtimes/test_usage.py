"""Per-pod CPU and memory from /proc (`runtimes.local.usage`), on real processes: one
burning CPU, one asleep."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from flotilla.runtimes.local.usage import UsageMeter, cpu_seconds, resident_bytes
from tests.helpers import wait_for_sync

BURN = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass\n"


@pytest.fixture
def procs() -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    idle = subprocess.Popen(["sleep", "20"])
    try:
        yield burner, idle
    finally:
        for p in (burner, idle):
            p.kill()
            p.wait(5)


def test_a_burning_pod_reads_as_millicores_an_idle_one_as_almost_none(
        procs: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]) -> None:
    burner, idle = procs
    meter = UsageMeter()
    assert meter.read("burn", [burner.pid]) is None  # a rate needs two readings
    assert meter.read("idle", [idle.pid]) is None
    start = cpu_seconds(burner.pid) or 0.0
    wait_for_sync(lambda: (cpu_seconds(burner.pid) or 0.0) - start >= 0.3, 10,
                  what="the burner to use 0.3 s of CPU")
    burn = meter.read("burn", [burner.pid])
    rest = meter.read("idle", [idle.pid])
    assert burn is not None
    assert rest is not None
    assert burn[0] >= 100, burn  # a whole core when the machine is free; >= 0.1 shared
    assert rest[0] <= 50, rest
    assert burn[1] > 1 << 20  # a Python interpreter's resident set: over a MiB
    assert rest[1] == resident_bytes(idle.pid)


def test_gone_and_new_processes(
        procs: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]) -> None:
    burner, idle = procs
    now = [100.0]
    meter = UsageMeter(clock=lambda: now[0])
    meter.read("p", [idle.pid])
    now[0] += 1.0
    wait_for_sync(lambda: (cpu_seconds(burner.pid) or 0.0) >= 0.05, 10,
                  what="the burner to use some CPU")
    # the old process went away and a new one (the burner, as a restart) came: the new
    # one counts from its own start, the gone one is not an error
    got = meter.read("p", [999_999_999, burner.pid])
    assert got is not None
    assert got[0] > 0
    meter.keep_only({})
    assert meter.read("p", [idle.pid]) is None, "forgotten: starts over"
    assert cpu_seconds(999_999_999) is None
