"""Names Flotilla derives from other names, which a writer and its readers must agree on.

One function per rule, here below every layer, so that no reader imports a writer's
internals: the binder names a template's ResourceBinding, the rollout controller finds
the binding of a Deployment it is told about, the CLI reads that binding for
`flotilla rollout`.

An EndpointSlice is named ``<service>.<cluster>``. The pair cannot collide with another
pair's name: a Service name is a DNS-1035 label (`models.workloads.Service` refuses
anything else), so it contains no ``.``, and the first ``.`` of a slice name always ends
the Service name: two different (Service, cluster) pairs give two different names. The
older ``<service>-<cluster>`` did collide (Service ``web-a`` in cluster ``b`` and
``web`` in ``a-b`` were both ``web-a-b``), and one cluster's endpoints overwrote the
other's. Readers never parse a slice name: ``spec.service``, ``spec.cluster`` and the
labels say whose slice it is.
"""

from __future__ import annotations

from flotilla.resources.models.common import is_dns_subdomain

#: Where Events about cluster-scoped objects (Clusters, cluster-wide policies) go, as in
#: Kubernetes: the recorder writes them there and `flotilla events` reads them there.
CLUSTER_EVENTS_NAMESPACE = "default"


def binding_name(kind: str, name: str) -> str:
    """The ResourceBinding of template ``kind/name``: Karmada's ``<name>-<kind>``."""
    return f"{name}-{kind.lower()}"


def endpoint_slice_name(service: str, cluster: str) -> str:
    """The one EndpointSlice of ``service`` in ``cluster``; ValueError when the pair
    cannot be named uniquely (a Service name with a dot, or an over-long name)."""
    if not service or "." in service:
        raise ValueError(f"Service name {service!r} must be a DNS label (no '.')")
    name = f"{service}.{cluster}"
    if not cluster or not is_dns_subdomain(name):
        raise ValueError(f"EndpointSlice name {name!r} for Service {service!r} in cluster "
                         f"{cluster!r} is not a valid object name (at most 253 lower-case "
                         f"letters, digits, '-' or '.')")
    return name
