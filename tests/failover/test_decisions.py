"""The pure failover decisions: timers from policies, budgets, evictions, task ends."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.controllers.cluster_health import LeaseWatch, judge
from flotilla.controllers.failover.admission import budget_check
from flotilla.controllers.failover.decide import (
    PRODUCER_APPLICATION,
    PRODUCER_CLUSTER,
    application_evictions,
    finished_tasks,
    taint_evictions,
)
from flotilla.controllers.failover.timers import (
    BudgetError,
    budget_problem,
    budget_toleration,
    timers_for,
)
from flotilla.controllers.failover.unhealthy import (
    ANNOTATION_UNHEALTHY_SINCE,
    encode,
    recorded,
    unhealthy_since,
)
from flotilla.resources.validation import InvalidObject
from flotilla.resources.wellknown import (
    TAINT_NOT_READY,
    TAINT_TRAFFIC_UNREACHABLE,
    TAINT_UNREACHABLE,
    parse_rfc3339,
)
from flotilla.scheduler.whatif import what_if

STAMP = "2027-01-15T08:00:00.250000Z"  # when the taints and tasks of these tests begin
NOW = parse_rfc3339(STAMP)


def policy(group: str = "policy.flotilla.io", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{group}/v1alpha1", "kind": "PropagationPolicy",
            "metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def cluster(name: str, *, ready: bool = True, taint: str | None = None,
            added: str = STAMP, region: str = "r1") -> dict[str, Any]:
    taints = [{"key": taint, "effect": e, "timeAdded": added}
              for e in ("NoSchedule", "NoExecute")] if taint else []
    return {"apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name}, "spec": {"region": region, "taints": taints},
            "status": {"conditions": [{"type": "Ready",
                                       "status": "True" if ready else "Unknown"}]}}


def binding(clusters: dict[str, int], *, replicas: int = 6, placement: Any = None,
            tasks: list[dict[str, Any]] | None = None,
            ready: dict[str, int] | None = None,
            health: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "work.flotilla.io/v1alpha1", "kind": "ResourceBinding",
        "metadata": {"name": "shop-deployment", "namespace": "default"},
        "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment",
                              "namespace": "default", "name": "shop"},
                 "replicas": replicas, "placement": placement or {},
                 "clusters": [{"name": n, "replicas": r} for n, r in clusters.items()],
                 "gracefulEvictionTasks": tasks or []},
        "status": {"aggregatedStatus": [
            {"clusterName": n, "status": {"readyReplicas": r},
             "health": (health or {}).get(n, "Healthy")}
            for n, r in (ready or {}).items()]},
    }


def test_defaults_differ_between_flotilla_and_karmada_policies() -> None:
    assert timers_for(policy(), {}, 3, 1).toleration_for(TAINT_UNREACHABLE) == 5
    karmada = timers_for(policy("policy.karmada.io"), {}, 3, 1)
    assert karmada.toleration_for(TAINT_NOT_READY) == 300


def test_explicit_toleration_and_forever() -> None:
    placement = {"clusterTolerations": [
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 30},
        {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute"}]}
    timers = timers_for(policy(), placement, 3, 1)
    assert timers.toleration_for(TAINT_UNREACHABLE) == 30
    assert timers.toleration_for(TAINT_NOT_READY) is None


def test_budget_derives_the_toleration_or_says_what_would_work() -> None:
    assert budget_toleration(10, 3, 1) == pytest.approx(3)
    with pytest.raises(BudgetError, match="at least 7s"):
        budget_toleration(4, 3, 1)
    timers = timers_for(policy(failover={"budget": "10s"}), {}, 3, 1)
    assert timers.toleration_for(TAINT_UNREACHABLE) == pytest.approx(3)
    assert timers.source == "budget"
    assert budget_problem({"failover": {"budget": "4s"}}, 3, 1) is not None
    tolerate_long = {"failover": {"budget": "10s"}, "placement": {"clusterTolerations": [
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "tolerationSeconds": 60}]}}
    assert "tolerationSeconds" in (budget_problem(tolerate_long, 3, 1) or "")


def test_taint_eviction_waits_for_the_toleration() -> None:
    timers = timers_for(policy(), {}, 3, 1)
    clusters = {"a": cluster("a", taint=TAINT_UNREACHABLE), "b": cluster("b")}
    b = binding({"a": 4, "b": 2})
    evict, recheck = taint_evictions(b, clusters, timers, NOW + 2)
    assert evict == []
    assert recheck == pytest.approx(3)
    evict, _ = taint_evictions(b, clusters, timers, NOW + 5)
    assert [(e.cluster, e.replicas, e.producer) for e in evict] == [("a", 4, PRODUCER_CLUSTER)]


def test_application_eviction_only_with_application_failover() -> None:
    b = binding({"a": 3, "b": 3}, health={"a": "Unhealthy"})
    assert application_evictions(b, timers_for(policy(), {}, 3, 1), {"a": NOW}, NOW + 99) \
        == ([], None)
    timers = timers_for(policy(failover={"application": {
        "decisionConditions": {"tolerationSeconds": 10}}}), {}, 3, 1)
    assert application_evictions(b, timers, {"a": NOW}, NOW + 4)[1] == pytest.approx(6)
    evict, _ = application_evictions(b, timers, {"a": NOW}, NOW + 10)
    assert [(e.cluster, e.producer) for e in evict] == [("a", PRODUCER_APPLICATION)]


def _task(name: str, producer: str = PRODUCER_CLUSTER, **extra: Any) -> dict[str, Any]:
    return {"fromCluster": name, "replicas": 4, "producer": producer,
            "purgeMode": "Graciously", "creationTimestamp": STAMP, **extra}


def test_task_finishes_when_replacements_are_ready() -> None:
    timers = timers_for(policy(), {}, 3, 1)
    clusters = {"a": cluster("a", ready=False, taint=TAINT_UNREACHABLE), "b": cluster("b"),
                "c": cluster("c")}
    starting = binding({"b": 3, "c": 3}, tasks=[_task("a")], ready={"b": 3, "c": 1})
    assert finished_tasks(starting, clusters, timers, NOW + 1)[0] == []
    ready = binding({"b": 3, "c": 3}, tasks=[_task("a")], ready={"b": 3, "c": 3})
    done, _ = finished_tasks(ready, clusters, timers, NOW + 1)
    assert [(f.cluster, f.restore, f.release_only) for f in done] == [("a", 0, False)]


def test_recovered_cluster_with_nowhere_else_gets_its_replicas_back() -> None:
    timers = timers_for(policy(), {}, 3, 1)
    clusters = {"a": cluster("a")}
    stuck = binding({}, replicas=4, tasks=[_task("a")])
    done, _ = finished_tasks(stuck, clusters, timers, NOW + 1)
    assert [(f.cluster, f.restore) for f in done] == [("a", 4)]


def test_application_task_is_released_but_keeps_the_cluster_avoided() -> None:
    timers = timers_for(policy(), {}, 3, 1)
    clusters = {"a": cluster("a"), "b": cluster("b")}
    b = binding({"b": 6}, tasks=[_task("a", PRODUCER_APPLICATION, gracePeriodSeconds=60)],
                ready={"b": 6})
    done, recheck = finished_tasks(b, clusters, timers, NOW + 1)
    assert [(f.cluster, f.release_only) for f in done] == [("a", True)]
    assert recheck == pytest.approx(59)
    released = binding({"b": 6}, ready={"b": 6}, tasks=[
        _task("a", PRODUCER_APPLICATION, gracePeriodSeconds=60, purgeMode="Immediately")])
    assert finished_tasks(released, clusters, timers, NOW + 1)[0] == []
    assert [f.cluster for f in finished_tasks(released, clusters, timers, NOW + 61)[0]] \
        == ["a"]


def test_purge_never_keeps_the_old_replicas() -> None:
    timers = timers_for(policy(), {}, 3, 1)
    b = binding({"b": 6}, tasks=[_task("a", suppressDeletion=True)], ready={"b": 6})
    assert finished_tasks(b, {"b": cluster("b")}, timers, NOW + 1)[0] == []


def test_what_if_moves_replicas_and_respects_residency() -> None:
    clusters = [cluster("east", region="east"), cluster("south", region="south")]
    resident = {"clusterAffinity": {"fieldSelector": {"matchExpressions": [
        {"key": "region", "operator": "In", "values": ["east"]}]}},
        "replicaScheduling": {"replicaSchedulingType": "Divided"}}
    spread = {"replicaScheduling": {"replicaSchedulingType": "Divided"}}
    b1 = binding({"east": 3, "south": 3}, placement=spread)
    b2 = binding({"east": 2}, replicas=2, placement=resident)
    b2["metadata"]["name"] = "ledger-deployment"
    report = what_if(["east"], clusters, [b1, b2])
    by = {w.binding: w for w in report.workloads}
    assert dict(by["default/shop-deployment"].after) == {"south": 6}
    ledger = by["default/ledger-deployment"]
    assert ledger.unplaced == 2
    assert "south" in ledger.reasons


def test_budget_check_names_the_field() -> None:
    check = budget_check(3, 1)
    check(policy(failover={"budget": "30s"}))  # meetable: accepted
    check({"kind": "Deployment", "spec": {"failover": {"budget": "1s"}}})  # not a policy
    with pytest.raises(InvalidObject) as refused:
        check(policy(failover={"budget": "2s"}))
    assert refused.value.errors[0].path == "spec.failover.budget"
    assert "at least 7s" in refused.value.errors[0].message


def test_what_if_names_traffic_that_loses_every_endpoint() -> None:
    clusters = [cluster("east", region="east"), cluster("south", region="south")]
    resident = {"clusterAffinity": {"clusterNames": ["east"]},
                "replicaScheduling": {"replicaSchedulingType": "Divided"}}
    b = binding({"east": 2}, replicas=2, placement=resident)
    tp = {"metadata": {"name": "shop", "namespace": "default"}, "spec": {"service": "shop"}}
    slices = [{"metadata": {"name": "shop-east", "namespace": "default"},
               "spec": {"service": "shop", "cluster": "east",
                        "endpoints": [{"address": "x", "ready": True}] * 2}}]
    report = what_if(["east"], clusters, [b], [tp], slices)
    (traffic,) = report.traffic
    assert traffic.loses_all
    assert traffic.endpoints_before == 2
    assert traffic.rebuilt_on == ()
    assert what_if(["south"], clusters, [b], [tp], slices).traffic[0].loses_all is False


def _annotated(b: dict[str, Any], since: dict[str, float]) -> dict[str, Any]:
    value = encode(since)
    b["metadata"]["annotations"] = {ANNOTATION_UNHEALTHY_SINCE: value} if value else {}
    return b


def test_unhealthy_since_keeps_the_recorded_time_across_reconciles() -> None:
    b = binding({"a": 3, "b": 3}, ready={"a": 0, "b": 3}, health={"a": "Unhealthy"})
    assert unhealthy_since(b, NOW) == {"a": NOW}  # first seen now
    later = _annotated(b, {"a": NOW})
    # Recorded on the binding: a later reconcile (a restarted controller) counts from it.
    assert unhealthy_since(later, NOW + 40) == {"a": NOW}
    timers = timers_for(policy(failover={"application": {
        "decisionConditions": {"tolerationSeconds": 30}}}), {}, 3, 1)
    evict, _ = application_evictions(later, timers, unhealthy_since(later, NOW + 30.5),
                                     NOW + 30.5)
    assert [e.cluster for e in evict] == ["a"]
    assert encode(unhealthy_since(later, NOW + 1)) == later["metadata"]["annotations"][
        ANNOTATION_UNHEALTHY_SINCE]
    assert recorded(later) == {"a": NOW}, "microseconds survive the round trip"


def test_unhealthy_since_forgets_recovered_clusters_and_bad_entries() -> None:
    healthy_again = _annotated(binding({"a": 3}, ready={"a": 3}), {"a": NOW})
    assert unhealthy_since(healthy_again, NOW + 5) == {}
    assert encode({}) is None
    # Not scheduled there any more (evicted): its clock stops too.
    evicted = _annotated(binding({"b": 6}, ready={"a": 0},
                                   health={"a": "Unhealthy"}), {"a": NOW})
    assert unhealthy_since(evicted, NOW + 5) == {}
    hand_edited = binding({"a": 3}, ready={"a": 0}, health={"a": "Unhealthy"})
    hand_edited["metadata"]["annotations"] = {
        ANNOTATION_UNHEALTHY_SINCE: '{"a": "yesterday"}'}
    assert unhealthy_since(hand_edited, NOW + 5) == {"a": NOW + 5}, \
        "an unreadable time restarts the clock, it never evicts early"
    hand_edited["metadata"]["annotations"] = {ANNOTATION_UNHEALTHY_SINCE: "not json"}
    assert unhealthy_since(hand_edited, NOW + 5) == {"a": NOW + 5}


def test_lease_age_is_measured_on_the_controllers_clock() -> None:
    seen = LeaseWatch()
    assert seen.age("a", None, 100.0) is None  # no Lease yet
    assert seen.age("a", "t1", 100.0) == 0.0  # first sight: a full grace period from now
    assert seen.age("a", "t1", 102.5) == pytest.approx(2.5)
    assert judge(seen.age("a", "t1", 102.9), 3, 2).ready
    verdict = judge(seen.age("a", "t1", 103.5), 3, 2)
    assert (verdict.status, verdict.taint) == ("Unknown", TAINT_UNREACHABLE)
    assert seen.age("a", "t2", 104.0) == 0.0  # renewed: fresh again, whatever t2 says
    assert judge(seen.age("a", "t2", 105.0), 3, 0).taint == TAINT_NOT_READY
    assert seen.age("a", None, 106.0) is None  # Lease gone: forgotten
    assert seen.age("a", "t2", 107.0) == 0.0


def test_traffic_unreachable_is_tolerated_for_the_application_toleration() -> None:
    """The gateways' taint moves replicas only for a policy with application failover,
    after its toleration, as an application failover (producer, purge mode, reason)."""
    app = policy(failover={"application": {"decisionConditions": {"tolerationSeconds": 4},
                                            "purgeMode": "Graciously"}})
    timers = timers_for(app, {}, 3, 1)
    assert timers.toleration_for(TAINT_TRAFFIC_UNREACHABLE) == 4
    assert timers.toleration_for(TAINT_UNREACHABLE) == 5  # the health taints unchanged
    # No application failover: tolerated forever (traffic already left; nothing moves).
    plain = timers_for(policy(), {}, 3, 1)
    assert plain.toleration_for(TAINT_TRAFFIC_UNREACHABLE) is None
    b = binding({"a": 3, "b": 3})
    clusters = {"a": cluster("a", taint=TAINT_TRAFFIC_UNREACHABLE), "b": cluster("b")}
    assert taint_evictions(b, clusters, plain, NOW + 1000) == ([], None)
    out, recheck = taint_evictions(b, clusters, timers, NOW + 1)
    assert out == []
    assert recheck == pytest.approx(3)
    out, _ = taint_evictions(b, clusters, timers, NOW + 4.5)
    assert [(e.cluster, e.replicas, e.reason, e.producer, e.purge) for e in out] == [
        ("a", 3, "TrafficUnreachable", PRODUCER_APPLICATION, "Graciously")]
    # An explicit clusterToleration for the key is honoured like any other.
    placement = {"clusterTolerations": [{"key": TAINT_TRAFFIC_UNREACHABLE,
                                         "operator": "Exists", "effect": "NoExecute",
                                         "tolerationSeconds": 60}]}
    assert timers_for(app, placement, 3, 1).toleration_for(TAINT_TRAFFIC_UNREACHABLE) == 60
    # ...and does not count against a failover budget (that is about a dead cluster).
    assert budget_problem({"failover": {"budget": "10s"}, "placement": placement}, 2, 1) is None
