"""Benchmark of the scheduler: place many templates over many simulated clusters.

    .venv/bin/python bench/scheduler_bench.py            # 10,000 templates, 1,000 clusters

Builds ``--clusters`` Cluster objects (regions, zones, providers, labels, capacities; a
few tainted, cordoned or not ready) and ``--templates`` Deployment templates (1-20
replicas, a handful of request shapes), spread over ``--policies`` PropagationPolicies
that are all Divided + Weighted + spreadConstraints (region 2..3 groups, 3..6 clusters):
half static weights (by region label), half dynamicWeight AvailableReplicas. Everything
goes through the real compile functions, then one `Scheduler` snapshot places every
template; each decision is timed. The process is pinned to one core.

Reference, in the same invocation: the naive path (`flotilla.scheduler.schedule`, which
recomputes filters, estimates and spread for every call) on the first
``--reference-templates`` templates, reported per decision and as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

from flotilla.scheduler import (
    ClusterInfo,
    Placement,
    Scheduler,
    ScheduleResult,
    WorkloadInfo,
    compile_cluster,
    compile_placement,
    compile_workload,
    schedule,
)

PROVIDERS = ("aws", "gcp", "azure")
SHAPES = (("100m", "128Mi"), ("250m", "256Mi"), ("500m", "512Mi"), ("1", "1Gi"),
          ("2", "4Gi"), ("200m", "2Gi"))


def make_clusters(count: int, regions: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        region = f"region-{i % regions}"
        taints = [{"key": "cluster.flotilla.io/unreachable", "effect": "NoSchedule"}] \
            if rng.random() < 0.02 else []
        cpu = rng.choice((16, 32, 64, 128))
        out.append({
            "apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": f"c{i:05}", "labels": {
                "region": region, "tier": rng.choice(("gold", "silver", "bronze"))}},
            "spec": {"region": region, "zone": f"{region}-{rng.randrange(3)}",
                     "provider": rng.choice(PROVIDERS), "taints": taints,
                     "unschedulable": rng.random() < 0.01},
            "status": {
                "conditions": [{"type": "Ready",
                                "status": "True" if rng.random() > 0.02 else "False"}],
                "allocatable": {"cpu": str(cpu), "memory": f"{cpu * 4}Gi", "pods": "500"},
                "allocated": {"cpu": f"{rng.randrange(cpu * 600)}m",
                              "memory": f"{rng.randrange(cpu)}Gi", "pods": "20"}},
        })
    return out


def make_policy(i: int, regions: int) -> dict[str, Any]:
    spread = [{"spreadByField": "region", "minGroups": 2, "maxGroups": 3},
              {"spreadByField": "cluster", "minGroups": 3, "maxGroups": 6}]
    affinity = {"labelSelector": {"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["gold", "silver"] if i % 3 else ["gold"]}]}}
    if i % 2:
        weight_preference: dict[str, Any] = {"dynamicWeight": "AvailableReplicas"}
    else:
        weight_preference = {"staticWeightList": [
            {"targetCluster": {"labelSelector": {"matchLabels": {"region": f"region-{r}"}}},
             "weight": 1 + (r + i) % 4} for r in range(regions)]}
    return {"clusterAffinity": affinity, "spreadConstraints": spread,
            "replicaScheduling": {"replicaSchedulingType": "Divided",
                                  "replicaDivisionPreference": "Weighted",
                                  "weightPreference": weight_preference}}


def make_template(i: int, rng: random.Random) -> dict[str, Any]:
    cpu, memory = rng.choice(SHAPES)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"app-{i:05}", "namespace": "bench"},
            "spec": {"replicas": rng.randint(1, 20), "template": {"spec": {"containers": [
                {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}}}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Job = tuple[WorkloadInfo, Placement]


def run(decide: Callable[[WorkloadInfo, Placement], ScheduleResult], jobs: list[Job]
        ) -> tuple[float, list[float], list[ScheduleResult]]:
    times: list[float] = []
    results: list[ScheduleResult] = []
    start = time.perf_counter()
    for workload, placement in jobs:
        t0 = time.perf_counter_ns()
        results.append(decide(workload, placement))
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return time.perf_counter() - start, times, results


def scaled_up(jobs: list[Job], results: list[ScheduleResult], k: int) -> list[Job]:
    """The same templates, each already placed, scaled up by ``k`` (the Steady path)."""
    return [(WorkloadInfo(w.key, w.replicas + k, w.requests, current=r.targets), p)
            for (w, p), r in zip(jobs, results, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=10_000)
    parser.add_argument("--clusters", type=int, default=1_000)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--reference-templates", type=int, default=200,
                        help="templates run through the naive path for the reference")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: any one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        core = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
    rng = random.Random(args.seed)
    cluster_objs = make_clusters(args.clusters, args.regions, rng)
    t0 = time.perf_counter()
    clusters: list[ClusterInfo] = [compile_cluster(c) for c in cluster_objs]
    policies = [compile_placement(make_policy(i, args.regions)) for i in range(args.policies)]
    jobs = [(compile_workload(make_template(i, rng)), policies[i % len(policies)])
            for i in range(args.templates)]
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    scheduler = Scheduler(clusters)
    snapshot_s = time.perf_counter() - t0
    total_s, times, results = run(scheduler.schedule, jobs)
    total_s += snapshot_s
    placed = sum(r.scheduled for r in results)
    up_s, up_times, up_results = run(scheduler.schedule, scaled_up(jobs, results, 2))
    moved_down = sum(after.replicas_of(name) < n
                     for before, after in zip(results, up_results, strict=True)
                     for name, n in before.targets)

    ref_jobs = jobs[: args.reference_templates]
    ref_s, ref_times, ref_results = run(lambda w, p: schedule(w, p, clusters), ref_jobs)
    ref_placed = sum(r.scheduled for r in ref_results)
    # The cached path must decide exactly as the naive one.
    mismatches = sum(scheduler.schedule(w, p) != schedule(w, p, clusters)
                     for w, p in ref_jobs[:50])

    report = {
        "templates": args.templates, "clusters": args.clusters, "policies": args.policies,
        "placed": placed, "compile_s": round(compile_s, 3),
        "total_s": round(total_s, 3), "decisions_per_s": round(args.templates / total_s),
        "p50_ms": round(pct(times, 0.50), 4), "p99_ms": round(pct(times, 0.99), 4),
        "max_ms": round(max(times), 3),
        "scale_up_s": round(up_s, 3), "scale_up_p50_ms": round(pct(up_times, 0.5), 4),
        "scale_up_p99_ms": round(pct(up_times, 0.99), 4),
        "scale_up_placed": sum(r.scheduled for r in up_results),
        "scale_up_clusters_moved_down": moved_down,
        "reference_templates": len(ref_jobs), "reference_placed": ref_placed,
        "reference_p50_ms": round(pct(ref_times, 0.50), 3),
        "reference_p99_ms": round(pct(ref_times, 0.99), 3),
        "reference_mean_ms": round(ref_s * 1000 / max(1, len(ref_jobs)), 3),
        "speedup_mean": round((ref_s / max(1, len(ref_jobs))) / (total_s / args.templates), 1),
        "cached_vs_naive_mismatches": mismatches,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.templates} templates over {args.clusters} clusters, {args.policies} "
          f"Divided+Weighted+spread policies, one core")
    print(f"  compile (clusters, policies, templates): {compile_s:.2f} s")
    print(f"  placed {placed}/{args.templates} in {total_s:.2f} s "
          f"= {report['decisions_per_s']} decisions/s; per decision p50 "
          f"{report['p50_ms']} ms, p99 {report['p99_ms']} ms, max {report['max_ms']} ms")
    print(f"  rescheduling all {args.templates} scaled up by 2 (current placement kept): "
          f"{up_s:.2f} s, p50 {report['scale_up_p50_ms']} ms, p99 "
          f"{report['scale_up_p99_ms']} ms, placed {report['scale_up_placed']}, "
          f"clusters moved down {moved_down}")
    print(f"  reference (naive schedule(), {len(ref_jobs)} templates): p50 "
          f"{report['reference_p50_ms']} ms, p99 {report['reference_p99_ms']} ms, mean "
          f"{report['reference_mean_ms']} ms -> cached path is {report['speedup_mean']}x "
          f"faster per decision; decisions identical: {mismatches == 0}")


if __name__ == "__main__":
    main()
