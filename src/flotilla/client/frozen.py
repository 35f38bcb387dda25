"""Read-only JSON objects: what an informer cache hands out.

A cache shared by several controllers (and by a data plane's model builder) must not be
changed by one reader behind the others' backs: a reconciler that set a field on a cached
object in place would make the cache disagree with the server and every later reader see
a write that never happened. So the cache stores objects frozen once, when they arrive,
and every read is free.

Why `FrozenDict`/`FrozenList` (subclasses of ``dict``/``list`` whose mutators raise)
rather than the other two candidates, measured with `bench/frozen_bench.py` on a rendered
Deployment (93 nested values) on a shared 2-core machine (quiet-ish runs; under heavy load
every figure triples, the ratios stay):

* a deep copy on every read (``copy.deepcopy``): 67-90 µs per read, and reconcilers read
  far more often than objects change (every Cluster on every reconcile);
* ``types.MappingProxyType`` over tuples: 35-39 µs to freeze, but a proxy is not a
  ``dict``: ``json.dumps``, ``copy.deepcopy`` and ``isinstance(x, dict)`` all fail on
  it, and lists turned into tuples compare unequal to lists;
* frozen subclasses: 35-38 µs to freeze, once per change, nothing per read; they are
  still a ``dict``/``list`` for ``json.dumps``, equality and ``isinstance``, and
  ``copy.deepcopy`` of one returns plain mutable containers, so the usual "copy, change,
  write" step needs no new spelling.

Writing through ``dict.__setitem__(obj, ...)`` still works; the guard is against
mistakes, not against intent.
"""

from __future__ import annotations

from typing import Any, NoReturn


def _refuse(container: object) -> NoReturn:
    raise TypeError(
        f"{type(container).__name__} is read-only (an object shared by an informer "
        "cache): copy.deepcopy() it and change the copy")


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses changes; `copy.deepcopy` of it returns plain containers."""

    __slots__ = ()

    def __setitem__(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def __delitem__(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def __ior__(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def clear(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def pop(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def popitem(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def setdefault(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def __copy__(self) -> dict[str, Any]:
        return dict(self)  # shallow: the values stay frozen

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        plain: dict[str, Any] = thaw(self)
        return plain

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (thaw(self),))


class FrozenList(list[Any]):
    """A ``list`` that refuses changes; `copy.deepcopy` of it returns plain containers."""

    __slots__ = ()

    def __setitem__(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def __delitem__(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def __iadd__(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def __imul__(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def append(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def extend(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def insert(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def pop(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def remove(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def reverse(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def clear(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        plain: list[Any] = thaw(self)
        return plain

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (thaw(self),))


def freeze(value: Any) -> Any:
    """A read-only deep copy of a JSON value (already frozen parts are reused).

    Written for speed, as it runs on every object an informer receives: one C-level copy
    of each container, and a recursion only into values that are containers themselves.
    """
    if isinstance(value, dict):
        if type(value) is FrozenDict:
            return value
        frozen = FrozenDict(value)
        for key, item in value.items():
            if isinstance(item, _CONTAINERS):
                dict.__setitem__(frozen, key, freeze(item))
        return frozen
    if isinstance(value, list):
        if type(value) is FrozenList:
            return value
        return FrozenList([freeze(item) if isinstance(item, _CONTAINERS) else item
                           for item in value])
    return value


_CONTAINERS = (dict, list)


def freeze_object(obj: dict[str, Any]) -> FrozenDict:
    frozen: FrozenDict = freeze(obj)
    return frozen


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of a (possibly frozen) JSON value."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value
