"""PATCH bodies applied to a stored object: merge patch, JSON patch and strategic-merge
patch. Pure functions over plain objects; the route reads, patches, re-validates and
writes with compare-and-set (`flotilla.api.writes`)."""

from __future__ import annotations

from typing import Any

from flotilla.api.patch.errors import PatchError
from flotilla.api.patch.jsonpatch import json_patch
from flotilla.api.patch.merge import create_merge_patch, merge_patch
from flotilla.api.patch.schema import GENERIC, schema_for
from flotilla.api.patch.strategic import strategic_merge_patch

__all__ = ["PatchError", "apply_patch", "create_merge_patch", "json_patch", "merge_patch",
           "strategic_merge_patch"]

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def apply_patch(kind: str, current: dict[str, Any], patch: Any, media: str) -> Any:
    """``current`` (an object of kind ``kind``) with ``patch`` of type ``media`` applied.

    A strategic-merge patch of one of Flotilla's own kinds merges like a merge patch
    (lists replaced), except that ``metadata`` keeps its Kubernetes list semantics; the
    result may be any JSON value, and the caller checks it is an object."""
    if media == MERGE:
        return merge_patch(current, patch)
    if media == JSON:
        return json_patch(current, patch)
    if media == STRATEGIC:
        return strategic_merge_patch(current, patch, schema_for(kind) or GENERIC)
    raise PatchError(f"unsupported patch type {media!r}", malformed=True)
