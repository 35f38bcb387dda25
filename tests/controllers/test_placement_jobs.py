"""A Job's per-cluster manifests and its federated status (pure rules of placement.jobs)."""

from __future__ import annotations

import copy
from typing import Any

from flotilla.controllers.placement.jobs import (
    federated_status,
    job_per_cluster,
    previous_share,
    waiting_condition,
)
from flotilla.resources.indexes import parse_indexes
from flotilla.resources.wellknown import ANNOTATION_JOB_INDEXES


def _job(indexed: bool = True, **status: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "default"},
            "spec": {"completions": 24, "parallelism": 6,
                     **({"completionMode": "Indexed"} if indexed else {}),
                     "template": {"spec": {"restartPolicy": "Never", "containers": []}}},
            "status": status}


def _share(obj: dict[str, Any]) -> frozenset[int]:
    share = previous_share(obj)
    assert share is not None
    return share


def test_indexed_divided_gets_disjoint_ranges_and_split_parallelism() -> None:
    out = job_per_cluster(_job(), [("a", 12), ("b", 12)], {}, duplicated=False)
    assert out["a"]["metadata"]["annotations"][ANNOTATION_JOB_INDEXES] == "0-11"
    assert out["b"]["metadata"]["annotations"][ANNOTATION_JOB_INDEXES] == "12-23"
    assert [out[c]["spec"]["parallelism"] for c in "ab"] == [3, 3]
    assert out["a"]["spec"]["completions"] == 24, "index values keep their meaning"


def test_lost_cluster_share_goes_to_the_survivor_minus_what_completed() -> None:
    first = job_per_cluster(_job(), [("a", 12), ("b", 12)], {}, duplicated=False)
    job = _job(completedIndexes="0-3,12-15")
    again = job_per_cluster(job, [("a", 24)], {"a": _share(first["a"])}, duplicated=False)
    assert _share(again["a"]) == frozenset(range(12)) | frozenset(range(16, 24))
    assert again["a"]["spec"]["parallelism"] == 6


def test_duplicated_and_non_indexed() -> None:
    dup = job_per_cluster(_job(), [("a", 24), ("b", 24)], {}, duplicated=True)
    assert dup["a"]["spec"] == _job()["spec"]
    assert ANNOTATION_JOB_INDEXES not in dup["b"]["metadata"].get("annotations", {})
    plain = job_per_cluster(_job(indexed=False), [("a", 16), ("b", 8)], {}, duplicated=False)
    assert [(plain[c]["spec"]["completions"], plain[c]["spec"]["parallelism"])
            for c in "ab"] == [(16, 4), (8, 2)]


def test_a_finished_job_is_suspended_everywhere() -> None:
    done = _job(conditions=[{"type": "Complete", "status": "True"}])
    out = job_per_cluster(done, [("a", 24)], {}, duplicated=False)
    assert out["a"]["spec"]["suspend"] is True


def _item(cluster: str, **status: Any) -> dict[str, Any]:
    return {"clusterName": cluster, "status": status}


def test_federated_status_unions_indexes_and_completes_once() -> None:
    job = _job()
    items = [_item("a", active=2, succeeded=10, completedIndexes="0-9", indexes="0-11"),
             _item("b", active=3, succeeded=12, completedIndexes="12-23", indexes="12-23")]
    status, verdict = federated_status(job, items, {"a": True, "b": True})
    assert (status["active"], status["succeeded"]) == (5, 22)
    assert status["completedIndexes"] == "0-9,12-23"
    assert verdict is None
    # b is lost; a finishes its share and b's indexes that a was given
    job["status"] = copy.deepcopy(status)
    items = [_item("a", active=0, succeeded=12, completedIndexes="0-11")]
    status, verdict = federated_status(job, items, {"a": True})
    assert parse_indexes(status["completedIndexes"]) == set(range(24))
    assert verdict is not None
    assert (verdict.type, verdict.reason) == ("Complete", "Completed")
    job["status"]["conditions"] = [{"type": "Complete", "status": "True"}]
    _, again = federated_status(job, items, {"a": True})
    assert again is None, "the verdict is given once"


def test_federated_failure_carries_the_cluster_reason() -> None:
    items = [_item("a", failed=3, conditions=[
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}])]
    status, verdict = federated_status(_job(), items, {"a": False})
    assert verdict is not None
    assert (verdict.type, verdict.reason) == ("Failed", "BackoffLimitExceeded")
    assert (status["failed"], status["active"]) == (3, 0)


def test_waiting_while_a_cluster_has_no_room() -> None:
    pending = [{"type": "Progressing", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes have room: insufficient cpu"}]
    items = [_item("a", active=1, conditions=pending)]
    cond = waiting_condition(_job(), items, {"a": True})
    assert cond is not None
    assert (cond.type, cond.status, cond.reason) == ("Waiting", "True", "Unschedulable")
    assert "a: 0/1 nodes" in cond.message
    assert waiting_condition(_job(), [_item("a", active=1)], {"a": True}) is None
    was = _job(conditions=[{"type": "Waiting", "status": "True"}])
    cleared = waiting_condition(was, [_item("a", active=1)], {"a": True})
    assert cleared is not None
    assert cleared.status == "False"
