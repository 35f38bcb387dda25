"""Placement: from templates and policies to Works on member clusters (steps 2-6 of
"Data flow" in docs/architecture.md).

    template + PropagationPolicy --binder-->  ResourceBinding (what, where allowed)
    ResourceBinding + Clusters   --scheduler--> spec.clusters [(cluster, replicas)]
    ResourceBinding + overrides  --renderer-->  one Work per cluster
    Works' status (from agents)  --status-->    binding and template status

Each arrow is its own controller with its own reconciler, so each can be read, tested
and restarted alone; they talk only through the objects in the store.
"""
