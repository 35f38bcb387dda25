"""The one decision every API request passes: may this caller do this?

RBAC first (`flotilla.api.authz.rbac`), then, for an agent credential, the agent
restriction (`flotilla.api.authz.agent`), and for a gateway credential the gateway
restriction (`flotilla.api.authz.gateway`). A refusal is a `ForbiddenError` whose message
names the user, the verb, the resource and its namespace/name, as Kubernetes' does.
"""

from __future__ import annotations

from typing import Any

from flotilla.api.auth import Principal
from flotilla.api.authz.agent import AgentRestriction, Fetch, Refused
from flotilla.api.authz.attributes import Attributes
from flotilla.api.authz.builtin import GATEWAY
from flotilla.api.authz.gateway import gateway_refusal
from flotilla.api.authz.rbac import ListKind, Rbac
from flotilla.api.errors import ForbiddenError

Object = dict[str, Any]


def forbidden(principal: Principal, attrs: Attributes, why: str) -> ForbiddenError:
    target = attrs.resource if not attrs.api_group else f"{attrs.resource}.{attrs.api_group}"
    subject = f'{target} "{attrs.name}"' if attrs.name else target
    scope = (f'in the namespace "{attrs.namespace}"' if attrs.namespace
             else "in all namespaces" if attrs.all_namespaces else "at the cluster scope")
    group = f'in API group "{attrs.api_group}"' if attrs.api_group else 'in the core API group'
    message = (f'{subject} is forbidden: User "{principal.name}" cannot {attrs.verb} '
               f'resource "{attrs.resource}" {group} {scope}: {why}')
    details: Object = {"kind": attrs.resource.split("/", 1)[0], "group": attrs.api_group}
    if attrs.name:
        details["name"] = attrs.name
    return ForbiddenError(message, details)


class Authorizer:
    def __init__(self, list_kind: ListKind, fetch: Fetch) -> None:
        self.rbac = Rbac(list_kind)
        self.agents = AgentRestriction(fetch)

    async def authorize(self, principal: Principal, attrs: Attributes,
                        body: Object | None = None) -> None:
        """Return if allowed, else raise `ForbiddenError`. ``body`` is the decoded
        request object of a write (what the agent restriction inspects)."""
        allowed = self.rbac.builtin_allows(principal, attrs) or \
            await self.rbac.stored_allows(principal, attrs)
        if not allowed:
            why = (f'role "{principal.role}"'
                   + (f' (namespace "{principal.namespace}" only)' if principal.namespace else "")
                   + " does not allow it and no RoleBinding or ClusterRoleBinding grants it")
            raise forbidden(principal, attrs, why)
        if principal.is_agent:
            try:
                await self.agents.check(principal.cluster, attrs, body)
            except Refused as exc:
                raise forbidden(principal, attrs, str(exc)) from None
        if principal.role == GATEWAY:
            refusal = gateway_refusal(principal.name, attrs)
            if refusal is not None:
                raise forbidden(principal, attrs, refusal)
