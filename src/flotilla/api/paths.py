"""Kubernetes-style resource paths, parsed into a `Target`.

    /api/v1/namespaces/{ns}/{plural}[/{name}[/status]]       core group, namespaced
    /api/v1/{plural}                                          core group, all namespaces
    /apis/{group}/{version}/namespaces/{ns}/{plural}[/...]    named groups, likewise
    /apis/{group}/{version}/{plural}[/{name}[/status]]        cluster-scoped kinds
    .../{plural}/{name}/scale                                 kinds with has_scale

Every group a kind is served under (policies: policy.flotilla.io and
policy.karmada.io) and every version in its table entry resolves to the same `Kind`,
hence the same stored objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from flotilla.client.base import NotFoundError
from flotilla.resources.kinds import KINDS, Kind


def _served() -> dict[tuple[str, str], Kind]:
    table: dict[tuple[str, str], Kind] = {}
    for kind in KINDS:
        for group_version in kind.api_versions:
            table[(group_version, kind.plural)] = kind
    return table


_SERVED = _served()


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    #: The group/version of the path, e.g. ``apps/v1``.
    api_version: str
    #: None: every namespace (collections only); "": cluster-scoped kind.
    namespace: str | None
    name: str | None = None
    subresource: str | None = None

    @property
    def resource(self) -> str:
        return self.kind.resource


def _not_found(path: str, why: str = "") -> NotFoundError:
    return NotFoundError(
        f"the server could not find the requested resource {path}" + (f": {why}" if why else "")
    )


def parse_path(path: str) -> Target:
    """Resolve a request path, or raise `NotFoundError` naming what is unknown."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group_version, rest = parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise _not_found(path)
    namespace: str | None = None
    if rest and rest[0] == "namespaces":
        if len(rest) < 3:
            raise _not_found(path, "namespaces are not a resource; use namespaces/{ns}/{plural}")
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise _not_found(path)
    plural = rest[0]
    kind = _SERVED.get((group_version, plural))
    if kind is None:
        raise _not_found(path, f"no resource {plural!r} is served under {group_version!r}")
    if namespace is not None and not kind.namespaced:
        raise _not_found(path, f"{kind.kind} is cluster-scoped; drop namespaces/{namespace}")
    name = rest[1] if len(rest) > 1 else None
    if name is not None and kind.namespaced and namespace is None:
        raise _not_found(path, f"{kind.kind} is namespaced; use namespaces/{{ns}}/{plural}/{name}")
    subresource = rest[2] if len(rest) > 2 else None
    served = {"status": kind.has_status, "scale": kind.has_scale}
    if subresource is not None and not served.get(subresource, False):
        raise _not_found(path, f"{kind.kind} has no sub-resource {subresource!r}")
    if not kind.namespaced:
        namespace = ""
    return Target(kind, group_version, namespace, name, subresource)
