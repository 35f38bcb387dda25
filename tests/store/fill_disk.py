"""Fill a small real file system with a store until the disk reserve refuses, then
report what happened. Run by tests/store/test_disk.py inside a private mount namespace
(``unshare -m``) over a tmpfs of a few MiB, so the disk really is nearly full.

    python -m tests.store.fill_disk DATA_DIR RESERVE_BYTES
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from flotilla.store.base import InsufficientStorage
from flotilla.store.sqlite import open_sqlite_store


def cm(name: str, size: int) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": "x" * size}}


async def main() -> None:
    data_dir, reserve = Path(sys.argv[1]), int(sys.argv[2])
    store = await open_sqlite_store(data_dir, disk_reserve=reserve, keep_revisions=0)
    acked: list[str] = []
    refused = ""
    for i in range(2000):  # bounded: the file system is a few MiB
        try:
            await store.create("configmaps", cm(f"c{i}", 32 * 1024))
        except InsufficientStorage as exc:
            refused = str(exc)
            break
        acked.append(f"c{i}")
    same_size = await store.get("configmaps", "default", acked[0])
    same_size["data"] = {"k": "y" * 32 * 1024}
    await store.update("configmaps", same_size)  # a heartbeat-like update still works
    grow = await store.get("configmaps", "default", acked[1])
    grow["data"] = {"k": "z" * 64 * 1024}
    try:
        await store.update("configmaps", grow)
        grew = True
    except InsufficientStorage:
        grew = False
    await store.delete("configmaps", "default", acked[-1])  # deletes still work
    await store.close()
    reopened = await open_sqlite_store(data_dir, disk_reserve=0)
    stored = [o["metadata"]["name"] for o in (await reopened.list("configmaps")).items]
    await reopened.close()
    print(json.dumps({"acked": acked, "refused": refused, "grew": grew, "stored": stored}))


if __name__ == "__main__":
    asyncio.run(main())
