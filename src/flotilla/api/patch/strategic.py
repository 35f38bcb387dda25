"""Strategic-merge patch: ``application/strategic-merge-patch+json``, as Kubernetes'
``apimachinery/pkg/util/strategicpatch`` applies it.

Like a merge patch, except where `flotilla.api.patch.schema` names a list merge key:
such lists merge item by item (``containers`` by ``name``, ``ports`` by
``containerPort``...), lists of scalars marked mergeable (``finalizers``) merge as sets.
Directives:

* ``$patch: replace`` in a mapping replaces it whole, ``$patch: delete`` removes it; in a
  list, an item ``{"$patch": "replace"}`` replaces the list, an item carrying the merge
  key and ``$patch: delete`` removes that item;
* ``$setElementOrder/<list>``: the order of the list's items after the merge;
* ``$retainKeys``: only the listed keys of the mapping survive;
* ``$deleteFromPrimitiveList/<list>``: values removed from a list of scalars.

Anything that does not fit (an item without its merge key, an unknown directive) raises
`PatchError`, so the whole patch is refused and nothing is applied.
"""

from __future__ import annotations

import copy
from typing import Any

from flotilla.api.patch.errors import PatchError
from flotilla.api.patch.schema import MergeList, Schema

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_FROM = "$deleteFromPrimitiveList/"
_DIRECTIVES = ("replace", "delete", "merge")


class _Deleted:
    """What a mapping with ``$patch: delete`` merges to: its parent drops the key."""


_DELETED = _Deleted()


def strategic_merge_patch(original: Any, patch: Any, schema: Schema) -> Any:
    """``original`` with ``patch`` applied; neither is modified."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be an object", malformed=True)
    result = _merge_map(copy.deepcopy(original) if isinstance(original, dict) else {},
                        patch, schema, "")
    return {} if result is _DELETED else result


def _directive(patch: dict[str, Any], path: str) -> str:
    value = patch.get(DIRECTIVE, "merge")
    if value not in _DIRECTIVES:
        raise PatchError(f"{path or 'the patch'}: unknown $patch directive {value!r}; use "
                         "replace, delete or merge", malformed=True)
    return str(value)


def _strip(value: Any, schema: Schema | MergeList | None) -> Any:
    """A patch value landing where nothing was: its directives and nulls removed."""
    if isinstance(value, dict):
        sub = schema if isinstance(schema, dict) else {}
        merged = _merge_map({}, value, sub, "")
        return {} if merged is _DELETED else merged
    if isinstance(value, list) and isinstance(schema, MergeList):
        return _merge_list([], value, schema, "")
    return copy.deepcopy(value)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema,
               path: str) -> dict[str, Any] | _Deleted:
    directive = _directive(patch, path)
    if directive == "delete":
        return _DELETED
    if directive == "replace":
        return {k: _strip(v, schema.get(k)) for k, v in patch.items()
                if k != DIRECTIVE and v is not None}
    retain = patch.get(RETAIN_KEYS)
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise PatchError(f"{path}.$retainKeys must be a list of field names",
                             malformed=True)
        extra = [k for k in patch if not k.startswith("$") and k not in retain
                 and patch[k] is not None]
        if extra:
            raise PatchError(f"{path}: {', '.join(extra)} set but not in $retainKeys")
        for key in list(original):
            if key not in retain:
                del original[key]
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith(DELETE_FROM):
            field = key[len(DELETE_FROM):]
            if not isinstance(value, list):
                raise PatchError(f"{path}.{key} must be a list", malformed=True)
            current = original.get(field)
            if isinstance(current, list):
                original[field] = [v for v in current if v not in value]
        elif key.startswith(SET_ORDER):
            if not isinstance(value, list):
                raise PatchError(f"{path}.{key} must be a list", malformed=True)
            orders[key[len(SET_ORDER):]] = value
        elif key.startswith("$") and key not in (DIRECTIVE, RETAIN_KEYS):
            raise PatchError(f"{path}: unknown directive {key!r}", malformed=True)
    done: set[str] = set()
    for field, order in orders.items():
        sub = schema.get(field)
        meta = sub if isinstance(sub, MergeList) else MergeList(None)
        where = f"{path}.{field}" if path else field
        before = original.get(field)
        patch_list = patch.get(field)
        if isinstance(before, list) and isinstance(patch_list, list):
            merged = _merge_list(list(before), patch_list, meta, where)
        elif isinstance(patch_list, list):
            merged = _merge_list([], patch_list, meta, where)
        elif isinstance(before, list):
            merged = before
        else:
            continue
        wanted = [_identity(o, meta.key) for o in order]
        ordered = [m for m in merged if _identity(m, meta.key) in wanted]
        server_only = [m for m in merged if _identity(m, meta.key) not in wanted]
        original[field] = _normalize(ordered, server_only, order,
                                     before if isinstance(before, list) else [], meta.key)
        done.add(field)
    for key, value in patch.items():
        if key.startswith("$") or key in done:
            continue
        where = f"{path}.{key}" if path else key
        sub = schema.get(key)
        if value is None:
            original.pop(key, None)
        elif key not in original:
            stripped = _strip(value, sub)
            if not (isinstance(value, dict) and value.get(DIRECTIVE) == "delete"):
                original[key] = stripped
        elif isinstance(value, dict) and isinstance(original[key], dict):
            merged_map = _merge_map(original[key], value,
                                    sub if isinstance(sub, dict) else {}, where)
            if merged_map is _DELETED:
                del original[key]
            else:
                original[key] = merged_map
        elif isinstance(value, list) and isinstance(sub, MergeList) \
                and isinstance(original[key], list):
            original[key] = _merge_list(original[key], value, sub, where)
        else:
            original[key] = _strip(value, sub)
    return original


def _identity(item: Any, key: str | None) -> Any:
    return item.get(key) if key is not None and isinstance(item, dict) else item


def _merge_list(original: list[Any], patch: list[Any], meta: MergeList,
                path: str) -> list[Any]:
    if any(isinstance(p, dict) and p.get(DIRECTIVE) == "replace" for p in patch):
        return [_strip(p, meta.items) for p in patch
                if not (isinstance(p, dict) and DIRECTIVE in p)]
    if meta.key is None:  # a set of scalars: union, then the patch's order
        merged = list(original)
        for item in patch:
            if item not in merged:
                merged.append(copy.deepcopy(item))
        return _normalize([m for m in merged if m in patch],
                          [m for m in merged if m not in patch], patch, original, None)
    key = meta.key
    out = list(original)
    plain: list[Any] = []
    for n, item in enumerate(patch):
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"{path}[{n}]: the item does not contain the merge key "
                             f"{key!r}", malformed=True)
        directive = item.get(DIRECTIVE)
        if directive == "delete":
            out = [o for o in out if _identity(o, key) != item[key]]
        elif directive not in (None, "merge"):
            raise PatchError(f"{path}[{n}]: unknown $patch directive {directive!r} in a "
                             "list item", malformed=True)
        else:
            plain.append(item)
    server_order = list(out)
    for item in plain:
        ident = item[key]
        index = next((i for i, o in enumerate(out) if _identity(o, key) == ident), None)
        if index is None:
            out.append(_strip(item, meta.items))
            continue
        current = out[index]
        item_merged = _merge_map(current if isinstance(current, dict) else {}, item,
                                 meta.items, f"{path}[{key}={ident}]")
        if item_merged is _DELETED:
            del out[index]
        else:
            out[index] = item_merged
    wanted = [i[key] for i in plain]
    return _normalize([o for o in out if _identity(o, key) in wanted],
                      [o for o in out if _identity(o, key) not in wanted],
                      plain, server_order, key)


def _index(items: list[Any], item: Any, key: str | None) -> int:
    ident = _identity(item, key)
    return next((i for i, o in enumerate(items) if _identity(o, key) == ident), -1)


def _normalize(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
               server_order: list[Any], key: str | None) -> list[Any]:
    """Kubernetes' ``normalizeElementOrder``: the patch's items in the patch's order, the
    server's own items in their stored order, the two interleaved where the stored order
    ranks both."""
    left = sorted(server_only, key=lambda i: _index(server_order, i, key))
    right = sorted(patch_items, key=lambda i: _index(patch_order, i, key))
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
        elif i >= len(left):
            out.append(right[j])
            j += 1
        else:
            li, ri = _index(server_order, left[i], key), _index(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out
