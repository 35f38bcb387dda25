"""Benchmark of the SQLite store: create/update throughput and watch delivery latency.

    .venv/bin/python bench/store_bench.py --count 10000 --writers 64

Creates then updates ``--count`` objects from ``--writers`` concurrent tasks (so group
commit has something to batch) while one watcher follows every change; then a quiet
phase of ``--quiet`` sequential writes from one task. Watch latency is measured per
event as (watcher has it) - (writer's ``await`` returned): the store publishes a batch to
watchers *before* it resolves the writers, so this is usually <= 0; and as (watcher has
it) - (write submitted), which includes queueing and the commit's fsync. As a reference
in the same run and on the same disk, a plain sqlite3 loop does the same inserts with
the same durability settings (WAL, synchronous=FULL), one transaction per write.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from flotilla.store.base import WatchEvent
from flotilla.store.sqlite import SqliteStore, open_sqlite_store
from flotilla.store.sqlite.schema import connect

RESOURCE = "configmaps"


def make(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:06}", "namespace": "bench", "labels": {"app": "bench"}},
        "data": {"payload": "x" * 200},
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Timings:
    def __init__(self) -> None:
        self.submitted: dict[int, float] = {}
        self.acked: dict[int, float] = {}
        self.received: dict[int, float] = {}


async def run_phase(
    store: SqliteStore, first: int, count: int, writers: int, timings: Timings, update: bool
) -> float:
    """Write objects ``first..first+count`` from ``writers`` tasks; return objects/s."""
    next_index = iter(range(first, first + count))

    async def writer() -> None:
        for i in next_index:  # shared iterator: each index taken by exactly one task
            obj = make(i)
            started = time.perf_counter()
            if update:
                obj["data"]["payload"] = "y" * 200
                stored = await store.update(RESOURCE, obj)
            else:
                stored = await store.create(RESOURCE, obj)
            done = time.perf_counter()
            revision = int(stored["metadata"]["resourceVersion"])
            timings.submitted[revision] = started
            timings.acked[revision] = done

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return count / (time.perf_counter() - started)


async def watcher(store: SqliteStore, since: int, last: int, timings: Timings) -> None:
    event: WatchEvent
    async for event in store.watch(RESOURCE, since=since):
        timings.received[event.revision] = time.perf_counter()
        if event.revision >= last:
            return


def reference(data_dir: Path, count: int) -> float:
    """Same rows, same pragmas, one transaction (one fsync) per write."""
    conn = connect(data_dir, writer=True)
    try:
        started = time.perf_counter()
        for i in range(count):
            text = json.dumps(make(i), separators=(",", ":"))
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO objects(resource, namespace, name, mod_revision, create_revision,"
                " lease_id, object) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (RESOURCE, "bench", f"cm-{i:06}", i + 1, i + 1, text),
            )
            conn.execute(
                "INSERT INTO events(revision, type, resource, namespace, name, object)"
                " VALUES (?, 'ADDED', ?, ?, ?, ?)",
                (i + 1, RESOURCE, "bench", f"cm-{i:06}", text),
            )
            conn.execute("COMMIT")
        return count / (time.perf_counter() - started)
    finally:
        conn.close()


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.dir))
    try:
        store = await open_sqlite_store(root / "store")
        try:
            loaded, quiet = Timings(), Timings()
            total = 2 * args.count
            watch_task = asyncio.create_task(watcher(store, 0, total, loaded))
            create_rate = await run_phase(store, 0, args.count, args.writers, loaded, False)
            update_rate = await run_phase(store, 0, args.count, args.writers, loaded, True)
            await asyncio.wait_for(watch_task, 60)
            stats = store.stats()
            watch_task = asyncio.create_task(watcher(store, total, total + args.quiet, quiet))
            quiet_rate = await run_phase(store, args.count, args.quiet, 1, quiet, False)
            await asyncio.wait_for(watch_task, 60)
        finally:
            await store.close()
        ref_count = min(args.count, args.ref_count)
        (root / "ref").mkdir()
        ref_rate = reference(root / "ref", ref_count)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"objects: {args.count}, concurrent writers: {args.writers}")
    print(f"create: {create_rate:8.0f} objects/s")
    print(f"update: {update_rate:8.0f} objects/s")
    print(f"group commit: {stats.writes} writes in {stats.batches} batches"
          f" ({stats.writes / stats.batches:.1f} writes per fsync)")
    report("watch, under load", loaded)
    print(f"quiet phase: {args.quiet} sequential creates, one writer: {quiet_rate:.0f} objects/s")
    report("watch, quiet", quiet)
    print(f"reference: plain sqlite3, one transaction per insert ({ref_count} inserts):"
          f" {ref_rate:.0f} objects/s")
    print(f"ratio create / reference: {create_rate / ref_rate:.1f}x;"
          f" update / reference: {update_rate / ref_rate:.1f}x")


def report(title: str, timings: Timings) -> None:
    after_ack = [(timings.received[r] - timings.acked[r]) * 1e3 for r in timings.acked]
    after_submit = [(timings.received[r] - timings.submitted[r]) * 1e3 for r in timings.acked]
    print(f"{title} ({len(after_ack)} events):"
          f" receive-ack p50 {pct(after_ack, 0.5):+.3f} ms p99 {pct(after_ack, 0.99):+.3f} ms;"
          f" receive-submit p50 {pct(after_submit, 0.5):.3f} ms"
          f" p99 {pct(after_submit, 0.99):.3f} ms")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="objects to create/update")
    parser.add_argument("--writers", type=int, default=64, help="concurrent writer tasks")
    parser.add_argument("--quiet", type=int, default=500,
                        help="sequential single-writer creates for the quiet latency phase")
    parser.add_argument("--ref-count", type=int, default=2_000,
                        help="cap on reference inserts (one fsync each, so slow)")
    parser.add_argument("--dir", default=None, help="where to put the temporary data dirs")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
