"""What a read-only informer cache costs: freezing once per change against the two other
ways of keeping readers from changing shared objects (a deep copy per read, a
``MappingProxyType``-over-tuples freeze), on a rendered Deployment from the shop demo.

    .venv/bin/python bench/frozen_bench.py [--number 20000]

Run from the repository root. Prints microseconds per object, best of five.
"""

from __future__ import annotations

import argparse
import copy
import timeit
import types
from pathlib import Path
from typing import Any

import yaml

from flotilla.client.frozen import freeze


def deployment() -> dict[str, Any]:
    """The demo's Deployment, with the metadata and status the API would add."""
    path = Path(__file__).resolve().parent.parent / "examples" / "shop" / "shop.yaml"
    dep: dict[str, Any] = next(d for d in yaml.safe_load_all(path.read_text())
                               if d["kind"] == "Deployment")
    dep["metadata"].update({"resourceVersion": "123", "uid": "u" * 36, "generation": 3,
                            "annotations": {"a": "b" * 80, "c": "d"},
                            "creationTimestamp": "2026-01-01T00:00:00Z"})
    dep["status"] = {
        "replicas": 6, "readyReplicas": 6,
        "conditions": [{"type": t, "status": "True", "lastTransitionTime": "x",
                        "reason": "r", "message": "m"} for t in ("Available", "Progressing")],
        "clusters": [{"name": f"c{i}", "replicas": 2, "readyReplicas": 2} for i in range(3)],
    }
    return dep


def proxy(value: Any) -> Any:
    if isinstance(value, dict):
        return types.MappingProxyType({k: proxy(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(proxy(v) for v in value)
    return value


def count(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(count(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(count(v) for v in value)
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000)
    n = parser.parse_args().number
    dep = deployment()
    print(f"object: {count(dep)} values")
    for name, fn in (("copy.deepcopy (per read)", lambda: copy.deepcopy(dep)),
                     ("freeze (per change)", lambda: freeze(dep)),
                     ("MappingProxyType + tuples", lambda: proxy(dep))):
        best = min(timeit.repeat(fn, number=n, repeat=5)) / n
        print(f"{name:28s} {best * 1e6:6.1f} µs")


if __name__ == "__main__":
    main()
