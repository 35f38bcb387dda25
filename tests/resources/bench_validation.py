"""Validation cost per object, for the docs' Benchmarks section (not collected by pytest).

Run: .venv/bin/python -m tests.resources.bench_validation [N]
Bounded: N (default 10,000) validations per kind and function, nothing else. CPU time
(process_time), so other load on the shared machine skews the figures less.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from flotilla.resources.validation import parse_typed, validate_object
from tests.resources.conftest import load_documents
from tests.resources.test_examples import EXAMPLES

KINDS = ("ResourceBinding", "Deployment", "PropagationPolicy", "TrafficPolicy", "Work")


def main(n: int) -> None:
    docs = {d["kind"]: d for d in load_documents(EXAMPLES / "every-kind.yaml")}
    functions: tuple[Callable[[dict[str, Any]], object], ...] = (validate_object, parse_typed)
    for kind in KINDS:
        for fn in functions:
            start = time.process_time()
            for _ in range(n):
                fn(docs[kind])
            took = time.process_time() - start
            print(f"{kind:18} {fn.__name__:16} {took / n * 1e6:6.1f} us/object "
                  f"{n / took:9.0f} objects/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
