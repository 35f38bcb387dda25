"""Reading request bodies: a hard size limit, then JSON or YAML into one object.

The limit is enforced twice: up front from ``Content-Length`` (the common case costs
nothing) and while streaming, for chunked bodies that announce no length; in both cases
the server never holds more than the limit in memory.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from starlette.requests import Request

from flotilla.api.errors import BadRequestError, RequestTooLargeError, UnsupportedMediaTypeError

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_JSON_TYPES = ("application/json", "")


class _Loader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: timestamps stay strings (JSON has no datetime)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read once: the authorizer reads it before the handler does, so it is
    kept on the request (a stream can be consumed only once)."""
    cached: bytes | None = getattr(request.state, "raw_body", None)
    if cached is not None:
        return cached
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequestError(f"invalid Content-Length {declared!r}")
        if int(declared) > limit:
            raise RequestTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    request.state.raw_body = raw
    return raw


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def decode_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """One object from a JSON or YAML body, or a 400 saying what is wrong with it."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not raw.strip():
        raise BadRequestError("the request body is empty; send one object as JSON or YAML")
    if media in _YAML_TYPES:
        try:
            docs = [d for d in yaml.load_all(raw, Loader=_Loader) if d is not None]
        except yaml.YAMLError as exc:
            raise BadRequestError(f"malformed YAML body: {_describe_yaml_error(exc)}") from None
        if len(docs) != 1:
            raise BadRequestError(
                f"the YAML body holds {len(docs)} documents; send exactly one object"
            )
        value: Any = docs[0]
    elif media in _JSON_TYPES:
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"malformed JSON body: {exc}") from None
    else:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {media!r}; use application/json or application/yaml"
        )
    if not isinstance(value, dict):
        raise BadRequestError(
            f"the body must be one object (a mapping), not {type(value).__name__}"
        )
    return value


async def discard_body(request: Request, cap: int) -> bool:
    """Read and drop the rest of a rejected body, up to ``cap`` bytes.

    A client such as httpx writes its whole body before reading the answer; closing the
    connection on it mid-upload turns a clear 413 into a "connection reset". Draining
    costs bandwidth, not memory. Returns False when the cap was hit (the server then
    closes the connection, and the client sees a reset after all).
    """
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > cap:
                return False
    except Exception:  # the client went away or the stream was already consumed
        return False
    return True
