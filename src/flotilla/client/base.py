"""The ResourceClient seam: what every consumer of the API (CLI, agent, gateway, DNS,
controllers) needs, independent of transport.

Two implementations: `flotilla.client.http` talks to a server over HTTP (with the bearer
token), and the API server's in-process registry (`flotilla.api.registry`) serves the
controllers running inside the server without a network hop. Informers and the feed
(`flotilla.client.informer`, `flotilla.client.feed`) are written against this protocol
only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from flotilla.resources.kinds import Kind

Object = dict[str, Any]
WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


class ApiError(Exception):
    """An error answer, shaped like a Kubernetes ``Status`` object."""

    def __init__(
        self, status: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}

    def to_status(self) -> Object:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": self.status,
            "reason": self.reason,
            "message": self.message,
            "details": self.details,
        }


class NotFoundError(ApiError):
    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(404, "NotFound", message, details)


class AlreadyExistsError(ApiError):
    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(409, "AlreadyExists", message, details)


class ConflictError(ApiError):
    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(409, "Conflict", message, details)


class GoneError(ApiError):
    """The resourceVersion asked for is compacted away: re-list, then watch again."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(410, "Expired", message, details)


class InvalidError(ApiError):
    """422: the object failed validation; ``details["causes"]`` lists field/message pairs."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(422, "Invalid", message, details)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: WatchEventType
    object: Object


@dataclass(slots=True)
class ObjectList:
    items: list[Object]
    resource_version: str
    continue_token: str | None = None


class ResourceClient(Protocol):
    """CRUD + watch on resources. ``namespace`` is "" for cluster-scoped kinds."""

    async def get(self, kind: Kind, namespace: str, name: str) -> Object: ...

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        selector: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> ObjectList:
        """``namespace=None`` lists across all namespaces."""
        ...

    async def create(self, obj: Object) -> Object: ...

    async def update(self, obj: Object) -> Object:
        """Replace spec/metadata (status is ignored). Compare-and-set when the object
        carries ``metadata.resourceVersion``: a stale one raises `ConflictError`."""
        ...

    async def update_status(self, obj: Object) -> Object:
        """Replace only ``status`` (the ``/status`` sub-resource)."""
        ...

    async def delete(
        self, kind: Kind, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Object | None:
        """Delete; returns the final object, or the object marked for deletion when
        finalizers hold it back."""
        ...

    def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        resource_version: str,
        selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Changes after ``resource_version``. Raises `GoneError` when it is too old."""
        ...
