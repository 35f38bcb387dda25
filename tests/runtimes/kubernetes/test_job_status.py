"""A member's Job status → the runtime's `JobProgress` (`runtimes.kubernetes.status`):
counts and verdict as the member's Job controller reports them, and an Indexed Job's
completed indexes kept to the share Flotilla gave the cluster."""

from __future__ import annotations

from typing import Any

from flotilla.resources.wellknown import ANNOTATION_JOB_INDEXES
from flotilla.runtimes.kubernetes.status import job_status


def manifest(share: str = "", indexed: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "pi", "namespace": "default"}
    if share:
        meta["annotations"] = {ANNOTATION_JOB_INDEXES: share}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": {"completions": 24, "parallelism": 3,
                     **({"completionMode": "Indexed"} if indexed else {})}}


def test_a_job_not_yet_seen_reports_zeros() -> None:
    w = job_status(manifest(), None)
    assert (w.kind, w.name, w.desired_replicas) == ("Job", "pi", 3)
    assert w.job is not None
    assert (w.job.active, w.job.succeeded, w.job.failed) == (0, 0, 0)
    assert w.conditions == ()


def test_counts_and_the_verdict_come_from_the_member() -> None:
    live = {"status": {"active": 0, "succeeded": 24, "failed": 2,
                       "startTime": "2026-12-04T18:00:00Z",
                       "completionTime": "2026-12-04T18:01:00Z",
                       "conditions": [{"type": "Complete", "status": "True",
                                       "reason": "", "message": ""}]}}
    w = job_status(manifest(), live)
    assert w.job is not None
    assert (w.job.succeeded, w.job.failed, w.job.completed_indexes) == (24, 2, "")
    assert w.job.completion_time is not None
    assert w.job.start_time is not None
    assert w.job.completion_time - w.job.start_time == 60
    assert [(c.type, c.status) for c in w.conditions] == [("Complete", "True")]


def test_indexes_outside_the_share_are_not_this_clusters() -> None:
    live = {"status": {"active": 2, "succeeded": 14, "completedIndexes": "0-13",
                       "conditions": []}}
    w = job_status(manifest("12-23", indexed=True), live)
    assert w.job is not None
    assert (w.job.indexes, w.job.completed_indexes, w.job.succeeded) == ("12-23", "12-13", 2)
    assert w.job.active == 2
