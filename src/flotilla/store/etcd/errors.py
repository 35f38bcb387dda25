"""etcd's gRPC errors as the Store's own, so callers above the seam see one vocabulary.

etcd reports most refusals by status code plus a fixed message text (its ``rpctypes``);
the texts matched here are those of etcd 3.4 and later.
"""

from __future__ import annotations

from typing import Any

import grpc

from flotilla.store.base import (
    InsufficientStorage,
    NotFound,
    StoreError,
    StoreUnavailable,
)

COMPACTED = "required revision has been compacted"
FUTURE = "required revision is a future revision"
LEASE_NOT_FOUND = "requested lease not found"

#: codes after which a retry may well succeed: no member reachable, no leader, timeout
_UNAVAILABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"}


def details(exc: Any) -> str:
    text = exc.details() if hasattr(exc, "details") else None
    return str(text or exc)


def code(exc: Any) -> str:
    status = exc.code() if hasattr(exc, "code") else None
    return str(getattr(status, "name", status))


def translate(exc: grpc.aio.AioRpcError, where: str, lease_id: int | None = None
              ) -> StoreError | ValueError:
    """The Store error for ``exc`` (raised by a call to etcd at ``where``)."""
    text, status = details(exc), code(exc)
    if LEASE_NOT_FOUND in text:
        return NotFound(f"lease {lease_id} not found (expired or revoked)")
    if "no leader" in text or "etcdserver: request timed out" in text:
        # etcd answers, but cannot commit: fewer than a majority of members are up.
        return StoreUnavailable(f"etcd at {where} has no quorum (no leader, or too few "
                                f"members up to commit a write): {text}")
    if status in _UNAVAILABLE or "no leader" in text or "timed out" in text:
        return StoreUnavailable(f"etcd at {where} did not answer: {text}")
    if "database space exceeded" in text:
        return InsufficientStorage(
            f"etcd at {where} is out of space ({text}); compact and defragment it, or "
            "raise its --quota-backend-bytes, then disarm the NOSPACE alarm")
    if "request is too large" in text:
        return ValueError(f"the object is larger than etcd at {where} accepts "
                          f"(--max-request-bytes): {text}")
    return StoreError(f"etcd at {where}: {status}: {text}")
