"""The placement decision (issue 4, item 2): which clusters run a template, how many each.

A pure library: `schedule` (one decision) and `Scheduler` (many decisions over one
cluster snapshot, cached). The controller that reads templates, policies and Clusters
from the store and writes ResourceBindings builds on these; see
docs/components/scheduler.md.
"""

from .compile import (
    PlacementError,
    compile_cluster,
    compile_placement,
    compile_workload,
    parse_quantity,
)
from .core import Scheduler, schedule
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
    "compile_workload",
    "parse_quantity",
    "schedule",
]
