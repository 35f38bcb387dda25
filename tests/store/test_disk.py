"""A nearly full disk: writes that grow the store are refused whole with a clear reason
(507 through the API) while deletes and same-size updates go on; no acknowledged write
is lost. On a real tmpfs filled to the reserve, and through the real server process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flotilla.store.base import InsufficientStorage
from flotilla.store.sqlite import open_sqlite_store
from flotilla.store.sqlite.disk import DiskReserve
from tests.store.conftest import cm

ROOT = Path(__file__).resolve().parents[2]


async def test_below_the_reserve_growth_is_refused_and_the_rest_goes_on(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    huge = DiskReserve(data).free_bytes() + 2**40  # more than the disk has: always below
    store = await open_sqlite_store(data, disk_reserve=0)
    kept = await store.create("configmaps", cm("kept"))
    gone = await store.create("configmaps", cm("gone"))
    await store.close()

    store = await open_sqlite_store(data, disk_reserve=huge)
    try:
        with pytest.raises(InsufficientStorage, match=r"below the store's reserve of"):
            await store.create("configmaps", cm("new"))
        bigger = {**kept, "data": {"k": "x" * 4096}}
        with pytest.raises(InsufficientStorage, match="free disk space or delete objects"):
            await store.update("configmaps", bigger)
        same = {**kept, "data": {"k": "y" * len(kept["data"]["k"])}}
        updated = await store.update("configmaps", same)
        assert updated["data"] == same["data"]
        await store.delete("configmaps", "default", gone["metadata"]["name"])
        names = [o["metadata"]["name"] for o in (await store.list("configmaps")).items]
        assert names == ["kept"]
    finally:
        await store.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="mounting a tmpfs needs root and unshare")
def test_a_really_full_tmpfs_refuses_before_sqlite_fails_and_loses_nothing(
        tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o size=24m tmpfs {mnt} && "
              f"exec {sys.executable} -m tests.store.fill_disk {mnt}/data {10 * 1024 * 1024}")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "below the store's reserve" in result["refused"]
    assert len(result["acked"]) >= 20  # it filled the disk, not refused at once
    assert result["grew"] is False
    # Every acknowledged create is there after a reopen, but the one deleted.
    assert sorted(result["stored"]) == sorted(result["acked"][:-1])


def test_the_cli_is_refused_a_create_with_the_reserve_named(
        tmp_path: Path) -> None:
    from tests.cli.serverproc import ServerProcess, api_only_args, flotilla

    data = tmp_path / "data"
    data.mkdir()
    beyond = DiskReserve(data).free_bytes() + 2**40  # more than the disk has
    server = ServerProcess(data, *api_only_args(), "--disk-reserve", str(beyond))
    server.start()
    try:
        made = flotilla("apply", "-f", "-", env=server.client_env(), input=(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n"))
        assert made.returncode != 0
        assert "below the store's reserve" in made.stderr, made.stderr
    finally:
        server.stop()


def test_a_bad_disk_reserve_is_a_usage_error() -> None:
    from tests.cli.serverproc import clean_env, flotilla

    bad = flotilla("server", "--disk-reserve", "lots", env=clean_env())
    assert bad.returncode == 2
    assert "--disk-reserve" in bad.stderr
    assert "lots" in bad.stderr
