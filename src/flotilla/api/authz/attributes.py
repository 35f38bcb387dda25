"""What one request asks to do, in the terms RBAC rules are written in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flotilla.resources.kinds import Kind

Object = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Attributes:
    """A request as the authorizer sees it.

    ``verb`` is Kubernetes' (get, list, watch, create, update, delete); ``resource`` is
    the plural with ``/status`` or ``/proxy`` appended for a sub-resource, as RBAC rules
    name them. ``namespace`` is "" for cluster-scoped kinds and for a list across every
    namespace (``all_namespaces`` then says so).
    """

    verb: str
    api_group: str
    resource: str
    namespace: str
    name: str
    kind: Kind | None = None
    all_namespaces: bool = False
    #: ``labelSelector`` of a list or watch ("" if none).
    selector: str = ""

    @property
    def is_write(self) -> bool:
        return self.verb not in ("get", "list", "watch")

    def describe(self) -> str:
        """``update clusters/status "east-1"``, ``list works in namespace "x"``."""
        what = f'{self.verb} {self.resource}'
        if self.api_group:
            what += f" ({self.api_group})"
        if self.name:
            what += f' "{self.name}"'
        if self.namespace:
            what += f' in namespace "{self.namespace}"'
        elif self.all_namespaces:
            what += " in all namespaces"
        return what
