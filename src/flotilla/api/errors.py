"""Errors as Kubernetes ``Status`` objects, and the mapping from store errors.

Every failure leaves the server as a `flotilla.client.base.ApiError`, so the HTTP layer
has exactly one way to answer an error and the HTTP client can map the answer back to
the same exception class a caller of the in-process registry would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse

from flotilla.client.base import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
)
from flotilla.resources.validation import FieldError
from flotilla.store import base as store


class BadRequestError(ApiError):
    """400: the request could not be read at all (malformed JSON/YAML, bad query)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(400, "BadRequest", message, details)


class UnauthorizedError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(401, "Unauthorized", message)


class ForbiddenError(ApiError):
    """403: authenticated, but the caller's roles do not allow the request."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(403, "Forbidden", message, details)


class MethodNotAllowedError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(405, "MethodNotAllowed", message)


class RequestTooLargeError(ApiError):
    """413: the body (or the object it decodes to) is larger than ``limit`` bytes."""

    def __init__(self, limit: int, message: str = "") -> None:
        super().__init__(
            413, "RequestEntityTooLarge",
            message or f"request body is larger than the limit of {limit} bytes",
        )


class UnsupportedMediaTypeError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(415, "UnsupportedMediaType", message)


class TooManyRequestsError(ApiError):
    """429: the caller is over a limit (`flotilla.api.fairness`). ``retry_after`` (whole
    seconds, at least 1) goes into ``details.retryAfterSeconds`` and the ``Retry-After``
    header, as Kubernetes answers it."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(429, "TooManyRequests", message,
                         {"retryAfterSeconds": self.retry_after})


class InternalError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(500, "InternalError", message)


class InsufficientStorageError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(507, "InsufficientStorage", message)


class UnavailableError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(503, "ServiceUnavailable", message)


def invalid(
    message: str, causes: Iterable[FieldError], *, kind: str = "", name: str = ""
) -> InvalidError:
    """A 422 whose ``details.causes`` name each offending field, as kubectl expects."""
    details: dict[str, Any] = {
        "causes": [{"field": c.path, "message": c.message, "reason": "FieldValueInvalid"}
                   for c in causes],
    }
    if kind:
        details["kind"] = kind
    if name:
        details["name"] = name
    return InvalidError(message, details)


def from_store(exc: store.StoreError, what: str) -> ApiError:
    """Translate a store error about ``what`` (e.g. ``deployments "web"``) for the caller."""
    if isinstance(exc, store.NotFound):
        return NotFoundError(f"{what} not found")
    if isinstance(exc, store.AlreadyExists):
        return AlreadyExistsError(f"{what} already exists")
    if isinstance(exc, store.Conflict):
        return ConflictError(
            f"operation on {what} failed: the object has been modified; "
            "read the latest version and try again"
        )
    if isinstance(exc, store.Expired):
        return GoneError(
            f"resourceVersion is too old (compacted at {exc.compacted_revision}); "
            "list again and watch from the list's resourceVersion",
            {"compactedRevision": exc.compacted_revision},
        )
    if isinstance(exc, store.StoreClosed):
        return UnavailableError("the store is shutting down; retry")
    if isinstance(exc, store.StoreUnavailable):
        return UnavailableError(f"the store is unavailable: {exc}; retry")
    if isinstance(exc, store.Fenced):  # only the deposed leader's own controllers see it
        return UnavailableError(f"{what} not written: this server no longer leads ({exc})")
    if isinstance(exc, store.InsufficientStorage):
        return InsufficientStorageError(f"{what} not written: {exc}")
    return InternalError(f"store error on {what}: {exc}")


def status_response(err: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    if isinstance(err, TooManyRequestsError):
        headers = {**(headers or {}), "Retry-After": str(err.retry_after)}
    return JSONResponse(err.to_status(), status_code=err.status, headers=headers)
