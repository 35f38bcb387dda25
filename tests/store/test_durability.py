"""Durability and ownership: reopen, kill -9 mid-write, one process per data dir."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flotilla.store.sqlite import DataDirLocked, open_sqlite_store
from tests.store.conftest import cm

R = "configmaps"
ROOT = Path(__file__).resolve().parents[2]


Spawn = Callable[[str], subprocess.Popen[str]]


@pytest.fixture
def spawn_writer(tmp_path: Path) -> Iterator[Spawn]:
    """Start crash writers (each in its own process group); kill any left at the end."""
    procs: list[subprocess.Popen[str]] = []

    def spawn(prefix: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.store.crash_writer", str(tmp_path / "d"), prefix],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        procs.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.stdout is not None
            proc.stdout.close()


async def test_state_and_revision_survive_reopen(tmp_path: Path) -> None:
    store = await open_sqlite_store(tmp_path / "d")
    try:
        await store.create(R, cm("a"))
        await store.create(R, cm("b"))
        await store.delete(R, "default", "b")
    finally:
        await store.close()
    store = await open_sqlite_store(tmp_path / "d")
    try:
        assert await store.current_revision() == 3
        assert [o["metadata"]["name"] for o in (await store.list(R)).items] == ["a"]
        assert (await store.create(R, cm("c")))["metadata"]["resourceVersion"] == "4"
    finally:
        await store.close()


async def test_one_store_per_data_dir_in_process(tmp_path: Path) -> None:
    store = await open_sqlite_store(tmp_path / "d")
    try:
        with pytest.raises(DataDirLocked, match=f"is in use by pid {os.getpid()}"):
            await open_sqlite_store(tmp_path / "d")
    finally:
        await store.close()
    again = await open_sqlite_store(tmp_path / "d")  # released on close
    await again.close()


def _read_acked(proc: subprocess.Popen[str], count: int, timeout: float) -> list[str]:
    """Read acknowledged keys until ``count`` of them arrived (or the deadline passed)."""
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + timeout
    while len(acked) < count:
        assert time.monotonic() < deadline, f"only {len(acked)} acks within {timeout}s"
        line = proc.stdout.readline()
        assert line, f"writer exited early with {proc.poll()}"
        acked.append(line.strip())
    return acked


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path, spawn_writer: Spawn) -> None:
    """Three rounds on one data dir, each killed at a random point mid-write."""
    acked: list[str] = []
    for round_ in range(3):
        writer = spawn_writer(f"r{round_}-")
        assert _read_acked(writer, 1, 20) == ["ready"]
        with pytest.raises(DataDirLocked, match=f"in use by pid {writer.pid}"):
            await open_sqlite_store(tmp_path / "d")
        acked += _read_acked(writer, random.randint(50, 1000), 30)
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        assert writer.stdout is not None
        # Lines already in the pipe before the kill were acknowledged too.
        acked += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]

    store = await open_sqlite_store(tmp_path / "d")  # the kernel dropped the dead lock
    try:
        stored = {o["metadata"]["name"]: o for o in (await store.list(R)).items}
        missing = [name for name in acked if name not in stored]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        assert all(stored[name]["data"] == {"v": "2"} for name in acked)
        # The revision counter continues past everything that was committed.
        top = max(int(o["metadata"]["resourceVersion"]) for o in stored.values())
        assert await store.current_revision() >= top
        created = await store.create(R, cm("after-crash"))
        assert int(created["metadata"]["resourceVersion"]) > top
    finally:
        await store.close()
