"""Maglev vs ring hash: lookup speed, build time, balance and disruption on removal.

    .venv/bin/python bench/gateway/hash_compare.py [--endpoints 10] [--keys 20000]

Decides which one backs the ``ConsistentHash`` strategy (docs/components/traffic.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

from flotilla.traffic.balancers.base import PickContext
from flotilla.traffic.balancers.consistent_hash import Maglev, RingHash
from flotilla.traffic.model import Endpoint
from flotilla.traffic.upstream import Upstream


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--keys", type=int, default=20000)
    args = ap.parse_args()
    ups = [Upstream(Endpoint(f"c{i}", "r", "z", "127.0.0.1", 10000 + i))
           for i in range(args.endpoints)]
    keys = [f"user-{i}".encode() for i in range(args.keys)]
    print(f"{args.endpoints} endpoints, {args.keys} keys")
    print(f"{'':8} {'build ms':>9} {'lookup us':>10} {'max/mean load':>14} "
          f"{'moved on removal':>17} {'of which needless':>18}")
    for cls in (Maglev, RingHash):
        t = time.perf_counter()
        h = cls(ups)
        build = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        owner = {k: h.pick(PickContext(ups, hash_key=k)) for k in keys}
        lookup = (time.perf_counter() - t) / len(keys) * 1e6
        load = Counter(owner.values())
        balance = max(load.values()) / statistics.mean(load.values())
        gone = ups[len(ups) // 2]
        rest = [u for u in ups if u is not gone]
        h2 = cls(rest)
        moved = [k for k in keys if h2.pick(PickContext(rest, hash_key=k)) is not owner[k]]
        needless = sum(1 for k in moved if owner[k] is not gone)
        print(f"{cls.__name__:8} {build:>9.1f} {lookup:>10.2f} {balance:>14.3f} "
              f"{len(moved) / len(keys):>17.1%} {needless / len(keys):>18.2%}")


if __name__ == "__main__":
    main()
