"""Defensive readers every view uses to turn a stored dict into typed, read-only fields.

A view must never raise on an odd object (validation is the API's job, and a data plane
must keep serving every other object), and must never hand out something a caller could
change in place or that aliases the cached dict. These helpers are the one spelling of
both rules, so each view reads a field in one line.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def entries(value: object) -> tuple[Mapping[str, Any], ...]:
    """The mappings of a list (other entries left out); empty if it is not a list."""
    if not isinstance(value, list | tuple):
        return ()
    return tuple(v for v in value if isinstance(v, Mapping))


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def integer(value: object, default: int = 0) -> int:
    """A whole number; a numeric string reads as its number, anything else as ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str | float):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def number(value: object) -> float | None:
    """A number of seconds (int or float); None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def frozen_strings(value: object) -> Mapping[str, str]:
    """A read-only copy of a str -> str mapping (labels); other entries are left out."""
    return MappingProxyType({k: v for k, v in mapping(value).items()
                             if isinstance(k, str) and isinstance(v, str)})


def frozen_json(value: object) -> Mapping[str, Any]:
    """A read-only copy of a nested JSON object handed on to a parser of its own (a
    placement to `flotilla.scheduler`): the top level cannot be changed, and the copy
    shares nothing with the cached dict."""
    return MappingProxyType(copy.deepcopy(dict(mapping(value))))


def empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Meta:
    """What controllers read of ``metadata``; ``deleting`` is "has a deletionTimestamp"."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    creation_timestamp: str = ""
    deleting: bool = False
    labels: Mapping[str, str] = field(default_factory=empty, hash=False)
    annotations: Mapping[str, str] = field(default_factory=empty, hash=False)

    @classmethod
    def of(cls, raw: object) -> Meta:
        meta = mapping(raw)
        return cls(text(meta.get("name")), text(meta.get("namespace")), text(meta.get("uid")),
                   integer(meta.get("generation")), text(meta.get("creationTimestamp")),
                   bool(meta.get("deletionTimestamp")), frozen_strings(meta.get("labels")),
                   frozen_strings(meta.get("annotations")))
