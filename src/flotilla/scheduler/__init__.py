"""The placement decision: which clusters run a template, and how many replicas each.

A pure library: `schedule` (one decision) and `Scheduler` (many decisions over one
cluster snapshot, cached). The controller that reads templates, policies and Clusters
from the store and writes ResourceBindings drives it like this::

    scheduler = Scheduler([compile_cluster(c) for c in clusters])  # per cluster-set change
    placement = compile_placement(policy["spec"]["placement"])     # per policy change
    workload = compile_workload(template, current=current_targets(binding))
    result = scheduler.schedule(workload, placement)
    binding["spec"]["clusters"] = target_clusters(result)
    condition = scheduled_condition(result, now)

See docs/components/scheduler.md for the semantics and where they follow Karmada.
"""

from .binding import (
    current_targets,
    schedule_binding,
    scheduled_condition,
    scheduler_for,
    target_clusters,
    workload_of,
)
from .compile import (
    InvalidQuantity,
    PlacementError,
    compile_cluster,
    compile_placement,
    compile_requests,
    compile_workload,
)
from .core import Scheduler, schedule
from .jobsplit import split_indexes, split_parallelism
from .types import (
    ClusterAffinity,
    ClusterInfo,
    Placement,
    ScheduleResult,
    SpreadConstraint,
    Taint,
    Target,
    Toleration,
    WeightRule,
    WorkloadInfo,
)

__all__ = [
    "ClusterAffinity",
    "ClusterInfo",
    "InvalidQuantity",
    "Placement",
    "PlacementError",
    "ScheduleResult",
    "Scheduler",
    "SpreadConstraint",
    "Taint",
    "Target",
    "Toleration",
    "WeightRule",
    "WorkloadInfo",
    "compile_cluster",
    "compile_placement",
    "compile_requests",
    "compile_workload",
    "current_targets",
    "schedule",
    "schedule_binding",
    "scheduled_condition",
    "scheduler_for",
    "split_indexes",
    "split_parallelism",
    "target_clusters",
    "workload_of",
]
