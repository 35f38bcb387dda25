"""Reading request bodies: a hard size limit, then JSON or YAML into one object under
the limits of `flotilla.api.input_limits`.

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
from flotilla.api.input_limits import (
    MAX_DEPTH,
    MAX_OBJECT_BYTES,
    MAX_YAML_NODES,
    InputLimitError,
    check_json_nesting,
    check_number_literal,
    compact_json,
    json_constant,
    json_float,
    json_int,
    too_deep,
)

#: Kubernetes' protobuf encoding: Flotilla stores JSON and has no protobuf schemas of its
#: kinds, so it answers 415 with the way round it (docs/api.md, "Protobuf").
PROTOBUF = "application/vnd.kubernetes.protobuf"
PROTOBUF_REFUSED = (
    "this server does not accept protobuf bodies (Content-Type "
    "application/vnd.kubernetes.protobuf); send JSON or YAML. With kubectl, render the "
    "object and apply it: kubectl create ... --dry-run=client -o yaml | kubectl apply -f -")
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_JSON_TYPES = ("application/json", "")


class _Loader(yaml.CSafeLoader):
    """YAML as Kubernetes reads it: timestamps stay strings (JSON has no datetime), and
    number literals obey the digit limit before ``int()`` sees them. libyaml (C) parses
    and composes: the pure-Python loader takes ~25 µs a node, so a 3 MiB body would hold
    the event loop for a minute."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        check_number_literal(str(node.value))
        value: int = super().construct_yaml_int(node)
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        check_number_literal(str(node.value))
        value: float = super().construct_yaml_float(node)
        return value


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)

_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _check_yaml_shape(raw: bytes) -> None:
    """Walk the parser's events (cheap: no nodes are built) and refuse, before anything
    is composed or expanded: an alias (a 1 KB "billion laughs" document of nested
    aliases is a billion nodes once serialised; CVE-2019-11253 in Kubernetes), nesting
    beyond `MAX_DEPTH`, more than `MAX_YAML_NODES` nodes."""
    depth = nodes = 0
    for event in yaml.parse(raw, Loader=_Loader):
        if isinstance(event, yaml.ScalarEvent):
            nodes += 1
        elif isinstance(event, _OPEN):
            nodes += 1
            depth += 1
            if depth > MAX_DEPTH:
                raise too_deep()
        elif isinstance(event, _CLOSE):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            raise InputLimitError(
                f"YAML aliases are not accepted (*{event.anchor} {_where(event.start_mark)}):"
                " an alias can multiply a small body into a huge object; write the value out")
        if nodes > MAX_YAML_NODES:
            raise InputLimitError(
                f"the YAML body has more than the limit of {MAX_YAML_NODES} nodes; "
                "send a large object as JSON (kubectl and the flotilla CLI do)")


def _where(mark: Any) -> str:
    return f"at line {mark.line + 1}, column {mark.column + 1}"


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
    """One object from a JSON or YAML body, or a 400 saying what is wrong with it.

    Both formats obey `flotilla.api.input_limits` (depth, number digits, 1.5 MiB as
    compact JSON: 413 beyond). A YAML object comes back as what its JSON decodes to
    (keys are strings, as in JSON), so nothing downstream sees a YAML-only type.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not raw.strip():
        raise BadRequestError("the request body is empty; send one object as JSON or YAML")
    try:
        if media in _YAML_TYPES:
            value = json.loads(compact_json(_yaml_object(raw)))
        elif media in _JSON_TYPES:
            value = _json_value(raw)
            if isinstance(value, dict):
                compact_json(value)
        elif media == PROTOBUF:
            raise UnsupportedMediaTypeError(PROTOBUF_REFUSED)
        else:
            raise UnsupportedMediaTypeError(
                f"unsupported Content-Type {media!r}; use application/json or application/yaml"
            )
    except InputLimitError as exc:
        if exc.too_large:
            raise RequestTooLargeError(MAX_OBJECT_BYTES, exc.message) from None
        raise BadRequestError(exc.message) from None
    if not isinstance(value, dict):
        raise BadRequestError(
            f"the body must be one object (a mapping), not {type(value).__name__}"
        )
    return value


#: The PATCH bodies Kubernetes defines; `flotilla.api.patch` applies each.
PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def patch_media_type(content_type: str | None) -> str:
    """The PATCH body's media type, or a 415 listing the four a PATCH may carry (a
    plain ``application/json`` PATCH is ambiguous in Kubernetes too)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        raise UnsupportedMediaTypeError(PROTOBUF_REFUSED)
    if media not in PATCH_TYPES:
        raise UnsupportedMediaTypeError(
            f"the body of a PATCH must be one of {', '.join(PATCH_TYPES)}; got {media!r}")
    return media


def decode_patch(raw: bytes, content_type: str | None) -> Any:
    """A PATCH body under the same limits as any object: a mapping, or for JSON patch
    a list of operations; server-side apply's is YAML (which JSON is too)."""
    media = patch_media_type(content_type)
    if media == "application/apply-patch+yaml":
        return decode_object(raw, "application/yaml")
    if not raw.strip():
        raise BadRequestError("the patch body is empty")
    try:
        value = _json_value(raw)
        compact_json(value)
    except InputLimitError as exc:
        if exc.too_large:
            raise RequestTooLargeError(MAX_OBJECT_BYTES, exc.message) from None
        raise BadRequestError(exc.message) from None
    if media == "application/json-patch+json":
        if not isinstance(value, list):
            raise BadRequestError("a JSON patch must be a list of operations")
    elif not isinstance(value, dict):
        raise BadRequestError(f"a {media} body must be one object (a mapping)")
    return value


def _yaml_object(raw: bytes) -> Any:
    try:
        _check_yaml_shape(raw)
        docs = [d for d in yaml.load_all(raw, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise BadRequestError(f"malformed YAML body: {_describe_yaml_error(exc)}") from None
    if len(docs) != 1:
        raise BadRequestError(
            f"the YAML body holds {len(docs)} documents; send exactly one object"
        )
    if not isinstance(docs[0], dict):
        raise BadRequestError(
            f"the body must be one object (a mapping), not {type(docs[0]).__name__}"
        )
    return docs[0]


def _json_value(raw: bytes) -> Any:
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        check_json_nesting(text)
        return json.loads(text, parse_int=json_int, parse_float=json_float,
                          parse_constant=json_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"malformed JSON body: {exc}") from None
    except RecursionError:  # not reached below MAX_DEPTH; kept so it can never be a 500
        raise BadRequestError(too_deep().message) from None


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
