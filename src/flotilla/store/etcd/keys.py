"""How objects map onto etcd keys and values.

Key: ``<prefix><resource>/<namespace>\\0<name>``. The NUL between namespace and name is
what makes etcd's byte order of keys the Store's (namespace, name) order: with ``/`` there
(as Kubernetes does), namespace ``a-b`` would sort before ``a``, because ``-`` is below
``/``, and lists would come back in another order than the SQLite store's. Cluster-scoped
objects have the empty namespace, so they sort first, as ``""`` does.

Value: the object's JSON without ``metadata.resourceVersion``. As in Kubernetes, the
resourceVersion is etcd's ``mod_revision`` of the key, set on every read: the revision of
a write is only known once etcd has applied it.
"""

from __future__ import annotations

import json
from typing import Any

from flotilla.store.base import Object

SEP = "\0"


def check_part(value: str, what: str) -> None:
    if SEP in value:
        raise ValueError(f"{what}: must not contain a NUL character")


def prefix_of(root: str, resource: str | None, namespace: str | None) -> bytes:
    """The key prefix of everything a list or watch of (resource, namespace) covers."""
    if resource is None:
        return root.encode()
    if "/" in resource or SEP in resource:
        raise ValueError(f"resource: must not contain '/' or NUL, got {resource!r}")
    if namespace is None:
        return f"{root}{resource}/".encode()
    check_part(namespace, "namespace")
    return f"{root}{resource}/{namespace}{SEP}".encode()


def key_of(root: str, resource: str, namespace: str, name: str) -> bytes:
    check_part(namespace, "metadata.namespace")
    check_part(name, "metadata.name")
    return prefix_of(root, resource, namespace) + name.encode()


def range_end(prefix: bytes) -> bytes:
    """The end of the range of every key starting with ``prefix`` (etcd's convention)."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def split_key(root: str, key: bytes) -> tuple[str, str, str] | None:
    """(resource, namespace, name) of a key this store wrote, or None for any other."""
    text = key.decode(errors="replace")
    if not text.startswith(root):
        return None
    resource, slash, rest = text[len(root):].partition("/")
    namespace, sep, name = rest.partition(SEP)
    if not slash or not sep:
        return None
    return resource, namespace, name


def encode(obj: Object) -> bytes:
    """The stored value: the object without its resourceVersion. Builds new dicts, so the
    caller's object is never touched; a value JSON cannot hold raises TypeError here,
    before anything is sent."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return json.dumps({**obj, "metadata": metadata}, separators=(",", ":")).encode()


def decode(value: bytes, revision: int) -> Object:
    obj: dict[str, Any] = json.loads(value)
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = obj["metadata"] = {}
    metadata["resourceVersion"] = str(revision)
    return obj
