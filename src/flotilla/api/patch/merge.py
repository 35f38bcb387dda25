"""JSON merge patch (RFC 7386): ``application/merge-patch+json``.

A mapping in the patch merges into the mapping it lands on, ``null`` removes a key, and
anything else (lists included) replaces what was there. Kubernetes applies it this way to
every kind, and to custom resources also for strategic-merge bodies, which is what
`flotilla.api.patch.strategic` falls back to for Flotilla's own kinds.
"""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """The result of applying ``patch`` to ``target``; neither argument is modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def create_merge_patch(original: Any, modified: Any) -> Any:
    """The merge patch turning ``original`` into ``modified`` (used by server-side apply
    to remove fields a manager stopped applying, and by tests as an oracle)."""
    if not isinstance(original, dict) or not isinstance(modified, dict):
        return copy.deepcopy(modified)
    patch: dict[str, Any] = {}
    for key in original:
        if key not in modified:
            patch[key] = None
    for key, value in modified.items():
        if key not in original:
            patch[key] = copy.deepcopy(value)
        elif original[key] != value:
            patch[key] = create_merge_patch(original[key], value)
    return patch
