"""The gateway restriction: a gateway credential writes only its own GatewayReport.

Several gateways may run, each with its own token, and the cluster-health controller
counts each report as one gateway's view; a gateway that could write another's report
could outvote the others and take a cluster out of service alone. RBAC (the ``gateway``
role) allows get, create and update of ``gatewayreports``; this narrows it to the one
named after the caller's token in the system namespace, which a static rule cannot say
(``resourceNames`` would have to name every gateway, and cannot allow a create).
"""

from __future__ import annotations

from flotilla.api.authz.attributes import Attributes
from flotilla.resources.wellknown import SYSTEM_NAMESPACE

REPORTS = "gatewayreports"


def gateway_refusal(name: str, attrs: Attributes) -> str | None:
    """Why a gateway named ``name`` may not make this request (None: it may)."""
    if attrs.resource.split("/", 1)[0] != REPORTS:
        return None
    if attrs.namespace == SYSTEM_NAMESPACE and attrs.name == name:
        return None
    return (f"a gateway may only touch its own GatewayReport "
            f"{SYSTEM_NAMESPACE}/{name} (named after its token)")
