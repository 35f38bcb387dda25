"""Names derived from other names, which a writer and its readers must agree on.

The binder names a template's ResourceBinding; the rollout controller finds the binding
of a Deployment it is told about; the CLI reads that binding for `flotilla rollout`. One
function each, here below every layer, so none of them imports another's internals.
"""

from __future__ import annotations

#: Where Events about cluster-scoped objects (Clusters, cluster-wide policies) go, as in
#: Kubernetes: the recorder writes them there and `flotilla events` reads them there.
CLUSTER_EVENTS_NAMESPACE = "default"


def binding_name(kind: str, name: str) -> str:
    """The ResourceBinding of template ``kind/name``: Karmada's ``<name>-<kind>``."""
    return f"{name}-{kind.lower()}"
