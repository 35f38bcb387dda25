"""Completion index sets in Kubernetes' compact text: ``"1-3,5,7-9"``.

One format for every layer that speaks about the indexes of an Indexed Job: the local
runtime reports the indexes a cluster completed (``status.completedIndexes``), the
placement controller tells a cluster which indexes are its share (an annotation), and
the Job's federated status unions what every cluster completed. Keeping the parser and
the printer here means the three can never disagree on a range's bounds.
"""

from __future__ import annotations

from collections.abc import Iterable


class IndexSetError(ValueError):
    """Text that is not a compact index set; the message quotes the bad part."""


def format_indexes(indexes: Iterable[int]) -> str:
    """Sorted, merged ranges: ``{5, 1, 2, 3}`` -> ``"1-3,5"``; the empty set -> ``""``."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        start = end = ordered[i]
        while i + 1 < len(ordered) and ordered[i + 1] == end + 1:
            i += 1
            end = ordered[i]
        parts.append(str(start) if start == end else f"{start}-{end}")
        i += 1
    return ",".join(parts)


def parse_indexes(text: str) -> frozenset[int]:
    """The inverse of `format_indexes`; accepts overlapping or unsorted ranges."""
    out: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise IndexSetError(f"bad index range {part!r} in {text!r}")
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise IndexSetError(f"index range {part!r} ends before it starts")
        out.update(range(first, last + 1))
    return frozenset(out)
