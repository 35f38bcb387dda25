"""Child process for the crash test: writes concurrently and prints each ACKNOWLEDGED key.

Run as ``python -m tests.store.crash_writer DATA_DIR PREFIX``. A line is printed (and
flushed) only after the awaited store call returned, so every printed key is one the
store promised to keep.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flotilla.store.sqlite import open_sqlite_store

WRITERS = 8
PER_WRITER = 5000  # bounded; the parent kills the process long before the end


async def main(data_dir: Path, prefix: str) -> None:
    store = await open_sqlite_store(data_dir)
    print("ready", flush=True)

    async def write(w: int) -> None:
        for i in range(PER_WRITER):
            name = f"{prefix}w{w}-{i}"
            created = await store.create("configmaps", {"metadata": {"name": name}})
            await store.update("configmaps", {**created, "data": {"v": "2"}},
                               expected_revision=int(created["metadata"]["resourceVersion"]))
            sys.stdout.write(f"{name}\n")
            sys.stdout.flush()

    await asyncio.gather(*(write(w) for w in range(WRITERS)))
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
