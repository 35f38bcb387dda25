"""The roles every Flotilla control plane has without any RBAC object: the people's roles
``admin``, ``edit`` and ``view`` (Kubernetes' user-facing roles), and one role per
component, each allowing exactly what that component calls.

A token's ``role`` binds it to one of these (or to a stored ClusterRole of that name);
the component roles are read from what the components do: the gateway follows
TrafficPolicies, EndpointSlices and Clusters (`flotilla.traffic.config_source`) and reads
``kubernetes.io/tls`` Secrets for edge TLS, and writes its own GatewayReport
(`flotilla.traffic.reachability`); the DNS follows the same plus ServiceExports
(`flotilla.dns.config_source`); an agent's calls are in `flotilla.agent` and are narrowed
to its own cluster by `flotilla.api.authz.agent`.
"""

from __future__ import annotations

from typing import Any

from flotilla.api.auth import ADMIN, AGENT

Rule = dict[str, Any]

READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete"]
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_RESOURCES = ["roles", "clusterroles", "rolebindings", "clusterrolebindings"]

#: What the people who run applications write (``edit``); the rest they only read.
APPLICATION_RESOURCES = [
    "deployments", "services", "configmaps", "secrets", "propagationpolicies",
    "clusterpropagationpolicies", "overridepolicies", "clusteroverridepolicies",
    "trafficpolicies", "serviceexports", "rolloutpolicies", "federatedhpas", "cronfederatedhpas",
    "events",
    "deployments/scale",
]
#: Every resource except RBAC's, for the read rules of edit and view.
READABLE = [
    *APPLICATION_RESOURCES, "clusters", "clusters/status", "resourcebindings", "works",
    "works/status", "serviceimports", "endpointslices", "leases", "deployments/status",
    "services/status", "trafficpolicies/status", "rolloutpolicies/status",
    "federatedhpas/status", "cronfederatedhpas/status", "serviceexports/status",
    "serviceimports/status",
    "resourcebindings/status", "gatewayreports",
]

GATEWAY = "gateway"
DNS = "dns"
EDIT = "edit"
VIEW = "view"


def _rule(verbs: list[str], resources: list[str], groups: list[str] | None = None,
          names: list[str] | None = None) -> Rule:
    rule: Rule = {"verbs": verbs, "apiGroups": groups or ["*"], "resources": resources}
    if names:
        rule["resourceNames"] = names
    return rule


BUILTIN_ROLES: dict[str, list[Rule]] = {
    ADMIN: [_rule(["*"], ["*"])],
    EDIT: [
        _rule(READ, READABLE),
        _rule(WRITE, APPLICATION_RESOURCES),
        # Live views and chaos through the agents' endpoints.
        _rule(["get", "create"], ["clusters/proxy"]),
    ],
    VIEW: [
        _rule(READ, [r for r in READABLE if r != "secrets"]),
        _rule(["get"], ["clusters/proxy"]),
    ],
    GATEWAY: [
        _rule(READ, ["trafficpolicies", "endpointslices", "clusters"]),
        # Edge TLS certificates (type kubernetes.io/tls; RBAC cannot narrow by type).
        _rule(READ, ["secrets"], [""]),
        # Its own view of which clusters its health checks reach (its own report only:
        # `flotilla.api.authz.gateway`).
        _rule(["get", "create", "update"], ["gatewayreports"], ["traffic.flotilla.io"]),
    ],
    DNS: [_rule(READ, ["trafficpolicies", "endpointslices", "clusters", "serviceexports"])],
    # The upper bound of an agent; `flotilla.api.authz.agent` narrows it to one cluster.
    AGENT: [
        _rule(["get", "create", "update"], ["clusters"], ["cluster.flotilla.io"]),
        _rule(["update"], ["clusters/status"], ["cluster.flotilla.io"]),
        _rule(["get", "create", "update"], ["leases"], ["coordination.flotilla.io"]),
        _rule([*READ, "create", "update", "delete"], ["endpointslices"],
              ["discovery.flotilla.io"]),
        _rule(READ, ["works"], ["work.flotilla.io"]),
        _rule(["update"], ["works/status"], ["work.flotilla.io"]),
        _rule(["create"], ["events"], [""]),
    ],
}
