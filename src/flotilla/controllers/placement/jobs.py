"""A Job's manifest per cluster: its share of completions, indexes and parallelism (pure).

The scheduler divides a Job's completions across clusters like a Deployment's replicas
(`flotilla.resources.views.JobView`: a Job's replicas are its completions). This module
turns each cluster's count into what that cluster's Job must run:

* Indexed: the disjoint index set of `flotilla.scheduler.split_indexes`, written in the
  `ANNOTATION_JOB_INDEXES` annotation (``spec.completions`` stays the Job's own, so the
  index values keep their meaning); a cluster keeps the share it was given last time,
  which the renderer reads back from the cluster's current Work.
* NonIndexed: ``spec.completions`` is the cluster's count.
* Both: ``spec.parallelism`` divided in proportion (`split_parallelism`).
* Duplicated: the Job unchanged on every cluster.

Once the federated Job is finished, every copy is rendered ``suspend: true``: nothing
of a finished Job starts again anywhere, even if a cluster was re-placed meanwhile.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from flotilla.resources.conditions import FALSE, TRUE, Condition, find
from flotilla.resources.indexes import IndexSetError, format_indexes, parse_indexes
from flotilla.resources.views import JobView
from flotilla.resources.views.job import COMPLETE, FAILED
from flotilla.resources.wellknown import ANNOTATION_JOB_INDEXES
from flotilla.scheduler import Target, split_indexes, split_parallelism

Object = dict[str, Any]


def previous_share(manifest: Mapping[str, Any] | None) -> frozenset[int] | None:
    """The index share a cluster's current Work gives it (None: no share recorded)."""
    meta = (manifest or {}).get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(ANNOTATION_JOB_INDEXES)
    if not isinstance(raw, str):
        return None
    try:
        return parse_indexes(raw)
    except IndexSetError:
        return None


def job_per_cluster(template: Object, targets: Sequence[Target],
                    previous: Mapping[str, frozenset[int]], *, duplicated: bool
                    ) -> dict[str, Object]:
    """Per target cluster, the Job it must run; clusters owed nothing are left out."""
    job = JobView.of(template)
    out: dict[str, Object] = {}
    if duplicated:
        out = {name: copy.deepcopy(template) for name, _ in targets}
    elif job.indexed:
        shares = split_indexes(job.completions, targets, previous, job.completed)
        owed = {name: len(share - job.completed) for name, share in shares.items()}
        par = split_parallelism(job.parallelism, owed)
        for name, share in shares.items():
            if not share:
                continue
            obj = copy.deepcopy(template)
            meta = obj.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}),
                                   ANNOTATION_JOB_INDEXES: format_indexes(share)}
            obj.setdefault("spec", {})["parallelism"] = max(1, par[name])
            out[name] = obj
    else:
        counts = {name: n for name, n in targets if n > 0}
        par = split_parallelism(job.parallelism, counts)
        for name, n in counts.items():
            obj = copy.deepcopy(template)
            obj.setdefault("spec", {}).update(completions=n, parallelism=par[name])
            out[name] = obj
    if job.finished:
        for obj in out.values():
            obj.setdefault("spec", {})["suspend"] = True
    return out


WAITING = "Waiting"


def waiting_condition(template: Object, items: Sequence[Mapping[str, Any]],
                      reachable: Mapping[str, bool]) -> Condition | None:
    """``Waiting`` True while a reachable cluster holds pods of the Job it has no room
    for (its runtime reports them Unschedulable instead of overfilling a node), False
    once none does; None when the Job never waited (no condition added for nothing)."""
    for item in items:
        if not reachable.get(str(item.get("clusterName")), False):
            continue
        for cond in (item.get("status") or {}).get("conditions") or []:
            if cond.get("reason") == "Unschedulable" and cond.get("status") == "False":
                return Condition(WAITING, TRUE, "Unschedulable",
                                 f"{item.get('clusterName')}: {cond.get('message') or ''}")
    before = find((template.get("status") or {}).get("conditions"), WAITING)
    return Condition(WAITING, FALSE, "Scheduled", "") if before is not None else None


def federated_status(template: Object, items: Sequence[Mapping[str, Any]],
                     reachable: Mapping[str, bool]) -> tuple[Object, Condition | None]:
    """The Job's status across clusters from each cluster's report (``items``, as the
    aggregator reads them from the Works), and the finishing condition if it is due.

    ``completedIndexes`` only grows: it unions the Job's own record with every report,
    so the share of a cluster that was lost (its Work gone) stays counted and is never
    owed again. Active pods count only where the cluster is reachable. ``Complete``
    when every index (Indexed) or completion (NonIndexed) succeeded; ``Failed`` when a
    cluster's Job failed; whichever comes first, once.
    """
    job = JobView.of(template)
    completed = set(job.completed)
    active = succeeded = failed = 0
    per_cluster = []
    failure: Mapping[str, Any] | None = None
    for item in items:
        status = item.get("status") or {}
        try:
            done = parse_indexes(str(status.get("completedIndexes") or ""))
        except IndexSetError:
            done = frozenset()
        completed |= done
        live = reachable.get(str(item.get("clusterName")), False)
        active += int(status.get("active") or 0) if live else 0
        succeeded += int(status.get("succeeded") or 0)
        failed += int(status.get("failed") or 0)
        for cond in status.get("conditions") or []:
            if cond.get("type") == FAILED and cond.get("status") == "True" and failure is None:
                failure = cond
        per_cluster.append({
            "name": item.get("clusterName"), "reachable": live,
            "active": int(status.get("active") or 0),
            "succeeded": int(status.get("succeeded") or 0),
            "failed": int(status.get("failed") or 0),
            **({"indexes": status["indexes"], "completedIndexes": format_indexes(done)}
               if job.indexed and status.get("indexes") else {})})
    if job.indexed:
        succeeded = len(completed & frozenset(range(job.completions)))
    else:
        succeeded = max(succeeded, job.succeeded)
    out: Object = {"active": 0 if job.finished else active, "succeeded": succeeded,
                   "failed": failed, "clusters": per_cluster}
    if job.indexed:
        out["completedIndexes"] = format_indexes(completed)
    verdict: Condition | None = None
    if not job.finished:
        if succeeded >= job.completions:
            verdict = Condition(COMPLETE, TRUE, "Completed",
                                f"{succeeded}/{job.completions} completions succeeded "
                                "across the clusters")
        elif failure is not None:
            verdict = Condition(FAILED, TRUE, str(failure.get("reason") or "Failed"),
                                str(failure.get("message") or ""))
    return out, verdict
