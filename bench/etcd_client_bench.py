"""Put rate of the etcd client Flotilla uses, against etcd's own Go client, same etcd.

    .venv/bin/python bench/etcd_client_bench.py --count 4000 --concurrency 64 --rounds 5

Starts a private etcd (Debian's /usr/bin/etcd, as the tests do) and, in each of
``--rounds`` interleaved rounds, puts ``--count`` keys of ``--size`` bytes from
``--concurrency`` concurrent callers with:

* ``go``: etcd's own Go client (clientv3; bench/etcd_put_go, built here with Debian's
  golang-etcd-server-dev): the reference every ratio is against;
* ``grpc``: the bare grpc.aio ``KV.Put`` on aetcd's generated stubs, which is what the
  etcd store sends (its floor in Python);
* ``aetcd``: aetcd's high-level ``Client.put`` (the same stubs behind a wrapper);
* ``etcd-store``: `EtcdStore.create` (one etcd transaction with its compare, plus JSON);
* ``sqlite-store``: `SqliteStore.create` on the same disk, for scale.

Prints the median of each over the rounds and its ratio to ``go``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.etcd_server: one way to start a private etcd

import aetcd  # noqa: E402
import grpc  # noqa: E402
from aetcd import rpc  # noqa: E402
from tests.etcd_server import HOST, start_etcd  # noqa: E402

from flotilla.store.etcd import open_etcd_store, parse_etcd_url  # noqa: E402
from flotilla.store.sqlite import open_sqlite_store  # noqa: E402

GO_SOURCE = ROOT / "bench" / "etcd_put_go" / "main.go"


def build_go(out: Path) -> Path | None:
    """The Go reference binary, or None (with why) when Go or the sources are missing."""
    go = shutil.which("go")
    if go is None or not Path("/usr/share/gocode/src/go.etcd.io/etcd/clientv3").is_dir():
        print("go reference skipped: apt-get install golang-go golang-etcd-server-dev")
        return None
    binary = out / "etcd-put"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
           "GOCACHE": str(out / "gocache")}
    subprocess.run([go, "build", "-o", str(binary), str(GO_SOURCE)], check=True, env=env,
                   timeout=600)
    return binary


async def fan_out(count: int, concurrency: int, put: Callable[[int], Awaitable[Any]]
                  ) -> float:
    indices = iter(range(count))

    async def worker() -> None:
        for i in indices:  # shared iterator: each index taken by exactly one task
            await put(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


def obj(i: int, size: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:06}", "namespace": "bench"},
            "data": {"payload": "x" * max(size - 100, 1)}}


async def one_round(args: argparse.Namespace, port: int, go: Path | None, tmp: Path,
                    round_: int) -> dict[str, float]:
    value = b"x" * args.size
    rates: dict[str, float] = {}
    target = f"{HOST}:{port}"
    if go is not None:
        out = await asyncio.to_thread(
            subprocess.run, [str(go), "--endpoint", target, "--total", str(args.count), "--conc",
             str(args.concurrency), "--size", str(args.size), "--prefix",
             f"/bench/{round_}/go/"], check=True, capture_output=True, text=True, timeout=600)
        rates["go"] = float(out.stdout.strip())

    channel = grpc.aio.insecure_channel(target)
    kv = rpc.KVStub(channel)
    rates["grpc"] = await fan_out(args.count, args.concurrency, lambda i: kv.Put(
        rpc.PutRequest(key=f"/bench/{round_}/grpc/{i}".encode(), value=value)))
    await channel.close()

    async with aetcd.Client(HOST, port) as client:
        rates["aetcd"] = await fan_out(args.count, args.concurrency, lambda i: client.put(
            f"/bench/{round_}/aetcd/{i}".encode(), value))

    store = await open_etcd_store(parse_etcd_url(f"etcd://{target}",
                                                 prefix=f"/bench/{round_}/store/"))
    try:
        rates["etcd-store"] = await fan_out(args.count, args.concurrency,
                                            lambda i: store.create("configmaps",
                                                                   obj(i, args.size)))
    finally:
        await store.close()

    sqlite = await open_sqlite_store(tmp / f"sqlite-{round_}")
    try:
        rates["sqlite-store"] = await fan_out(args.count, args.concurrency,
                                              lambda i: sqlite.create("configmaps",
                                                                      obj(i, args.size)))
    finally:
        await sqlite.close()
    return rates


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="etcd-bench-", dir=args.dir))
    etcd = start_etcd(tmp)
    try:
        go = build_go(tmp)
        rounds = []
        for round_ in range(args.rounds):
            rates = await one_round(args, etcd.port, go, tmp, round_)
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v:,.0f}/s"
                                                      for k, v in rates.items()), flush=True)
            rounds.append(rates)
    finally:
        etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.count} puts of {args.size} B per round, {args.concurrency} concurrent "
          f"callers, median of {args.rounds} rounds (etcd {etcd_version()}):")
    reference = statistics.median(r["go"] for r in rounds) if go is not None else None
    for name in rounds[0]:
        median = statistics.median(r[name] for r in rounds)
        ratio = f"  {median / reference:.2f}x go" if reference else ""
        print(f"  {name:13} {median:9,.0f} puts/s{ratio}")


def etcd_version() -> str:
    out = subprocess.run(["/usr/bin/etcd", "--version"], capture_output=True, text=True,
                         check=False).stdout
    return out.splitlines()[0].split()[-1] if out else "?"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="puts per client per round")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent callers")
    parser.add_argument("--size", type=int, default=256, help="value bytes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where the temporary etcd data goes")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
