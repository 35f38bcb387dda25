"""Field sets: which fields of an object a manager owns, in Kubernetes' ``FieldsV1``
encoding (``f:<field>``, ``k:<merge key as JSON>`` for an item of a keyed list,
``v:<value as JSON>`` for an item of a set of scalars, ``.`` for the item itself).

A path is a tuple of those tokens; a set of paths encodes to the nested mapping stored in
``metadata.managedFields[].fieldsV1``. Which lists are keyed comes from
`flotilla.api.patch.schema`, so apply, strategic merge and OpenAPI agree.
"""

from __future__ import annotations

import json
from typing import Any

from flotilla.api.patch.schema import MergeList, Schema

Path = tuple[str, ...]
FieldSet = frozenset[Path]

#: Not part of any manager's fields: identity and server-set metadata, and status
#: (written only through ``/status``).
_SKIP_TOP = frozenset({"apiVersion", "kind", "status"})
_SKIP_META = frozenset({"name", "namespace", "uid", "resourceVersion", "generation",
                        "creationTimestamp", "deletionTimestamp", "managedFields",
                        "selfLink", "deletionGracePeriodSeconds"})
#: Set by the server on every write (`flotilla.api.routes.CHANGED_BY`), owned by nobody.
_SKIP_ANNOTATIONS = frozenset({"flotilla.io/changed-by"})


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def key_token(item: dict[str, Any], key: str) -> str:
    return "k:" + _json({key: item.get(key)})


def fields_of(obj: dict[str, Any], schema: Schema) -> FieldSet:
    """Every leaf field ``obj`` sets (and every list item it holds)."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in _SKIP_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _SKIP_META}
            notes = meta.get("annotations")
            if isinstance(notes, dict):
                meta["annotations"] = {k: v for k, v in notes.items()
                                       if k not in _SKIP_ANNOTATIONS}
                if not meta["annotations"]:
                    del meta["annotations"]
            _walk(meta, _sub(schema, "metadata"), ("f:metadata",), out)
            continue
        _walk_value(value, schema.get(key), ("f:" + key,), out)
    return frozenset(out)


def _sub(schema: Schema, key: str) -> Schema:
    sub = schema.get(key)
    return sub if isinstance(sub, dict) else {}


def _walk(value: dict[str, Any], schema: Schema, prefix: Path, out: set[Path]) -> None:
    for key, item in value.items():
        _walk_value(item, schema.get(key), (*prefix, "f:" + key), out)


def _walk_value(value: Any, sub: Schema | MergeList | None, path: Path,
                out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        _walk(value, sub if isinstance(sub, dict) else {}, path, out)
    elif isinstance(value, list) and value and isinstance(sub, MergeList):
        for item in value:
            if sub.key is None:
                out.add((*path, "v:" + _json(item)))
            elif isinstance(item, dict):
                token = (*path, key_token(item, sub.key))
                out.add((*token, "."))
                _walk(item, sub.items, token, out)
    else:
        out.add(path)


def value_at(obj: Any, path: Path, schema: Schema) -> tuple[bool, Any]:
    """(found, value) of ``path`` in ``obj``."""
    node: Any = obj
    sub: Schema | MergeList | None = schema
    for token in path:
        if token == ".":
            return True, node
        if token.startswith("f:"):
            name = token[2:]
            if not isinstance(node, dict) or name not in node:
                return False, None
            node = node[name]
            sub = sub.get(name) if isinstance(sub, dict) else None
        elif token.startswith("k:") and isinstance(sub, MergeList) and sub.key:
            want = json.loads(token[2:])
            if not isinstance(node, list):
                return False, None
            match = [i for i in node if isinstance(i, dict)
                     and i.get(sub.key) == want.get(sub.key)]
            if not match:
                return False, None
            node, sub = match[0], sub.items
        elif token.startswith("v:"):
            want = json.loads(token[2:])
            return (isinstance(node, list) and want in node), want
        else:
            return False, None
    return True, node


def remove_path(obj: dict[str, Any], path: Path, schema: Schema) -> None:
    """Remove the field (or list item, for a path ending in ``.`` or ``v:``) at ``path``;
    nothing when it is not there."""
    if not path:
        return
    if path[-1] == ".":
        parent_path, item_token = path[:-2], path[-2]
    else:
        parent_path, item_token = path[:-1], path[-1]
    found, parent = value_at(obj, parent_path, schema)
    if not found:
        return
    if item_token.startswith("f:") and isinstance(parent, dict):
        parent.pop(item_token[2:], None)
        return
    if not isinstance(parent, list):
        return
    if item_token.startswith("v:"):
        want = json.loads(item_token[2:])
        parent[:] = [i for i in parent if i != want]
    elif item_token.startswith("k:"):
        want = json.loads(item_token[2:])
        (key, ident), = want.items()
        parent[:] = [i for i in parent if not (isinstance(i, dict) and i.get(key) == ident)]


def encode(fields: FieldSet) -> dict[str, Any]:
    """The ``fieldsV1`` mapping of a field set."""
    root: dict[str, Any] = {}
    for path in sorted(fields):
        node = root
        for token in path:
            node = node.setdefault(token, {})
    return root


def decode(fields_v1: Any) -> FieldSet:
    """The field set of a stored ``fieldsV1`` mapping (anything else: empty)."""
    out: set[Path] = set()

    def walk(node: dict[str, Any], prefix: Path) -> None:
        for token, child in node.items():
            path = (*prefix, str(token))
            if isinstance(child, dict) and child:
                walk(child, path)
            else:
                out.add(path)

    if isinstance(fields_v1, dict):
        walk(fields_v1, ())
    return frozenset(out)
