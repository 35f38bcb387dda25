"""Evaluating RBAC: rules against a request, and which rules reach a caller.

A caller gets the rules of (1) its token's role, as a ClusterRole (built-in, else a
stored one of that name), applied everywhere or, for a token created with
``--namespace``, only in that namespace; (2) every stored ClusterRoleBinding and, in the
request's namespace, every RoleBinding whose subjects name the caller: ``User`` = the
token's name, ``Group`` = the token's role. Rules only allow; there is no deny rule, so
the order does not matter, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from flotilla.api.auth import Principal
from flotilla.api.authz.attributes import Attributes
from flotilla.api.authz.builtin import BUILTIN_ROLES

Object = dict[str, Any]
#: Lists the stored objects of one RBAC kind ("Role", "ClusterRoleBinding", ...).
ListKind = Callable[[str], Awaitable[list[Object]]]


def rule_allows(rule: Object, attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.api_group not in groups:
        return False
    resources = rule.get("resources") or []
    base = attrs.resource.split("/", 1)[0]
    if not ("*" in resources or attrs.resource in resources
            or (attrs.resource != base and f"{base}/*" in resources)):
        return False
    names = rule.get("resourceNames") or []
    # resourceNames cannot allow list, watch or create (no single name), as in Kubernetes.
    return not names or (bool(attrs.name) and attrs.name in names)


def rules_allow(rules: Iterable[Object], attrs: Attributes) -> bool:
    return any(rule_allows(r, attrs) for r in rules)


def _names(subject_list: Any, principal: Principal) -> bool:
    for s in subject_list or []:
        if not isinstance(s, dict):
            continue
        if s.get("kind") == "User" and s.get("name") == principal.name:
            return True
        if s.get("kind") == "Group" and s.get("name") == principal.role:
            return True
    return False


class Rbac:
    """Built-in roles first (no store read: the hot path of every component), the
    stored roles and bindings only when those do not allow the request."""

    def __init__(self, list_kind: ListKind) -> None:
        self._list = list_kind

    def builtin_allows(self, principal: Principal, attrs: Attributes) -> bool:
        rules = BUILTIN_ROLES.get(principal.role)
        if rules is None or not self._in_scope(principal, attrs):
            return False
        return rules_allow(rules, attrs)

    @staticmethod
    def _in_scope(principal: Principal, attrs: Attributes) -> bool:
        """A namespaced token's role applies inside its namespace only."""
        if not principal.namespace:
            return True
        return attrs.namespace == principal.namespace and not attrs.all_namespaces

    async def stored_allows(self, principal: Principal, attrs: Attributes) -> bool:
        cluster_roles = {r["metadata"]["name"]: r for r in await self._list("ClusterRole")}
        own = cluster_roles.get(principal.role)
        if (own is not None and principal.role not in BUILTIN_ROLES
                and self._in_scope(principal, attrs)
                and rules_allow(own.get("rules") or [], attrs)):
            return True
        for b in await self._list("ClusterRoleBinding"):
            if _names(b.get("subjects"), principal) and \
                    self._role_rules(b, cluster_roles, {}, attrs):
                return True
        if not attrs.namespace:
            return False
        roles = {r["metadata"]["name"]: r for r in await self._list("Role")
                 if r["metadata"].get("namespace") == attrs.namespace}
        for b in await self._list("RoleBinding"):
            if b["metadata"].get("namespace") != attrs.namespace:
                continue
            if _names(b.get("subjects"), principal) and \
                    self._role_rules(b, cluster_roles, roles, attrs):
                return True
        return False

    @staticmethod
    def _role_rules(binding: Object, cluster_roles: dict[str, Object],
                    roles: dict[str, Object], attrs: Attributes) -> bool:
        ref = binding.get("roleRef") or {}
        name = str(ref.get("name") or "")
        if ref.get("kind") == "Role":
            role = roles.get(name)
            return role is not None and rules_allow(role.get("rules") or [], attrs)
        if name in BUILTIN_ROLES:
            return rules_allow(BUILTIN_ROLES[name], attrs)
        role = cluster_roles.get(name)
        return role is not None and rules_allow(role.get("rules") or [], attrs)
