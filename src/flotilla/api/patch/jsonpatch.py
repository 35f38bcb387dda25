"""JSON patch (RFC 6902): ``application/json-patch+json``.

Operations apply in order to a copy; the first failing one (a missing path, a ``test``
whose value differs) fails the whole patch, so a patch is never half-applied. Paths are
JSON pointers (RFC 6901, ``~0`` and ``~1`` escapes; ``-`` appends to a list).
"""

from __future__ import annotations

import copy
from typing import Any

from flotilla.api.patch.errors import PatchError

_OPS = ("add", "remove", "replace", "move", "copy", "test")


def _pointer(path: Any, where: str) -> list[str]:
    if not isinstance(path, str):
        raise PatchError(f"{where}: path must be a string", malformed=True)
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"{where}: path {path!r} must start with '/'", malformed=True)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"path {path!r}: {token!r} is not a list index")
    i = int(token)
    if i > len(container) or (not adding and i == len(container)):
        raise PatchError(f"path {path!r}: index {i} is out of range (the list has "
                         f"{len(container)} items)")
    return i


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path {path!r} does not exist: no {token!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path, adding=False)]
        else:
            raise PatchError(f"path {path!r} does not exist: {token!r} is inside a scalar")
    return node


def _get(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, adding=False)]
    raise PatchError(f"path {path!r} does not exist")


def _add(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, adding=True), value)
    else:
        raise PatchError(f"path {path!r}: cannot add inside a scalar")
    return doc


def _remove(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path, adding=False)]
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """``target`` with ``operations`` applied; raises `PatchError` naming the failing
    operation (its index and path)."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations", malformed=True)
    doc = copy.deepcopy(target)
    for n, op in enumerate(operations):
        where = f"operation {n}"
        if not isinstance(op, dict):
            raise PatchError(f"{where} must be an object", malformed=True)
        name = op.get("op")
        if name not in _OPS:
            raise PatchError(f"{where}: unknown op {name!r}; use one of {', '.join(_OPS)}",
                             malformed=True)
        path = op.get("path")
        tokens = _pointer(path, where)
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{where} ({name} {path}): value is required", malformed=True)
        try:
            if name == "add":
                doc = _add(doc, tokens, copy.deepcopy(op["value"]), str(path))
            elif name == "remove":
                doc = _remove(doc, tokens, str(path))
            elif name == "replace":
                _get(doc, tokens, str(path))  # must exist
                doc = _add(_remove(doc, tokens, str(path)) if tokens else doc, tokens,
                           copy.deepcopy(op["value"]), str(path))
            elif name == "test":
                if _get(doc, tokens, str(path)) != op["value"]:
                    raise PatchError(f"test failed: {path} is not {op['value']!r}")
            else:  # move, copy
                source = op.get("from")
                from_tokens = _pointer(source, where)
                value = copy.deepcopy(_get(doc, from_tokens, str(source)))
                if name == "move":
                    if tokens[:len(from_tokens)] == from_tokens and tokens != from_tokens:
                        raise PatchError(f"cannot move {source} into its own child {path}")
                    doc = _remove(doc, from_tokens, str(source))
                doc = _add(doc, tokens, value, str(path))
        except PatchError as exc:
            raise PatchError(f"{where} ({name} {path}): {exc.message}",
                             malformed=exc.malformed) from None
    return doc
