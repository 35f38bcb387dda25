"""Backups and a damaged store, through the real CLI and server process: a backup taken
while the server runs restores the same objects at the same revisions; a `kill -9`
during a backup leaves the store serving; a damaged file stops the server at start with
a message saying how to restore."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from flotilla.store.sqlite import open_sqlite_store
from flotilla.store.sqlite.schema import DB_FILE
from tests.cli.serverproc import FLOTILLA, ServerProcess, api_only_args, clean_env, flotilla
from tests.store.conftest import cm

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data: {{k: "{value}"}}
"""


def apply(server: ServerProcess, *names: str, value: str = "v") -> None:
    docs = "---\n".join(CONFIGMAP.format(name=n, value=value) for n in names)
    done = flotilla("apply", "-f", "-", input=docs, env=server.client_env())
    assert done.returncode == 0, done.stderr


def configmaps(server: ServerProcess) -> dict[str, str]:
    """name -> resourceVersion of every ConfigMap in default, as the CLI reads them."""
    got = flotilla("get", "configmaps", "-o", "json", env=server.client_env())
    assert got.returncode == 0, got.stderr
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for o in json.loads(got.stdout)["items"]}


@pytest.fixture
def server(tmp_path: Path) -> ServerProcess:
    proc = ServerProcess(tmp_path / "data", *api_only_args())
    proc.start()
    try:
        yield proc  # type: ignore[misc]
    finally:
        proc.stop()


def test_a_backup_taken_while_serving_restores_the_same_objects_and_revisions(
        server: ServerProcess, tmp_path: Path) -> None:
    apply(server, *(f"before-{i}" for i in range(5)))
    at_backup = configmaps(server)
    out = tmp_path / "backup.db"
    taken = flotilla("backup", str(out), "--data-dir", str(server.data_dir),
                     env=clean_env())
    assert taken.returncode == 0, taken.stderr
    assert "backed up 5 object(s)" in taken.stderr + taken.stdout
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    apply(server, "after")
    apply(server, "before-0", value="changed")

    refused = flotilla("restore", str(out), "--data-dir", str(server.data_dir),
                       env=clean_env())
    assert refused.returncode != 0
    assert "in use by pid" in refused.stderr  # not while the server runs
    server.stop()
    restored = flotilla("restore", str(out), "--data-dir", str(server.data_dir),
                        env=clean_env())
    assert restored.returncode == 0, restored.stderr
    server.start()
    assert configmaps(server) == at_backup
    apply(server, "new-after-restore")  # and the store goes on from there
    assert int(configmaps(server)["new-after-restore"]) > max(map(int, at_backup.values()))


def test_kill_9_during_a_backup_leaves_the_store_serving(tmp_path: Path) -> None:
    data = tmp_path / "data"

    async def fill() -> None:  # ~24 MiB, so the copy takes a moment
        store = await open_sqlite_store(data)
        try:
            for i in range(1000):
                obj = cm(f"bulk-{i}")
                obj["data"] = {"k": os.urandom(12 * 1024).hex()}
                await store.create("configmaps", obj)
        finally:
            await store.close()

    asyncio.run(fill())
    server = ServerProcess(data, *api_only_args())
    server.start()
    try:
        out = tmp_path / "backup.db"
        killed_mid_way = False
        for _ in range(5):  # bounded: each try races the copy once
            proc = subprocess.Popen([FLOTILLA, "backup", str(out), "--data-dir", str(data)],
                                    env=clean_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                if any(p.name.startswith(".backup.db.tmp") for p in tmp_path.iterdir()):
                    proc.send_signal(signal.SIGKILL)
                    killed_mid_way = True
                    break
            proc.wait(timeout=10)
            if killed_mid_way:
                break
            out.unlink(missing_ok=True)
        assert killed_mid_way, "every backup finished before it could be killed"
        assert not out.exists()  # no half backup under the real name
        apply(server, "after-the-kill")
        assert "after-the-kill" in configmaps(server)
        again = flotilla("backup", str(out), "--data-dir", str(data), env=clean_env(),
                         timeout=120)
        assert again.returncode == 0, again.stderr
        assert "backed up 1001 object(s)" in again.stderr + again.stdout
    finally:
        server.stop()


def test_a_damaged_store_stops_the_server_at_start_with_how_to_restore(
        tmp_path: Path) -> None:
    data = tmp_path / "data"

    async def fill() -> None:
        store = await open_sqlite_store(data)
        try:
            for i in range(300):
                await store.create("configmaps", cm(f"c{i}"))
        finally:
            await store.close()

    asyncio.run(fill())
    db = data / DB_FILE
    size = db.stat().st_size
    assert size > 16 * 4096, "the store is too small to damage a page in its middle"
    with db.open("r+b") as f:  # scribble over b-tree pages in the middle of the file
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 8192)
    started = subprocess.run(
        [FLOTILLA, "server", "--data-dir", str(data), "--listen", "127.0.0.1:0"],
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode != 0
    assert "damaged" in started.stderr
    assert "flotilla restore" in started.stderr
    assert "Traceback" not in started.stderr
