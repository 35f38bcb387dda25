"""Conditions: lastTransitionTime moves with the status and only with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotilla.client.desired import converge
from flotilla.resources.conditions import (
    Condition,
    find,
    is_true,
    set_condition,
    set_conditions,
    status_of,
)
from flotilla.resources.wellknown import now_rfc3339, parse_rfc3339
from tests.resources.stored import CLUSTER, registry_at, stored_cluster

T1, T2, T3 = "2027-01-15T08:00:00Z", "2027-01-15T08:05:00Z", "2027-01-15T08:10:00Z"


def test_a_new_condition_is_appended_with_the_time_of_the_change() -> None:
    conds: list[Any] = [{"type": "Applied", "status": "True", "reason": "Ok"}]
    assert set_condition(conds, Condition("Ready", "True", "ClusterReady", "ok"), T1)
    assert conds[1] == {"type": "Ready", "status": "True", "reason": "ClusterReady",
                        "message": "ok", "lastTransitionTime": T1}


def test_same_status_keeps_the_transition_time_while_reason_and_message_change() -> None:
    conds: list[Any] = []
    set_condition(conds, Condition("Ready", "False", "NodesNotReady", "0/3 nodes"), T1)
    assert set_condition(conds, Condition("Ready", "False", "ClusterNotReady", "1/3"), T2)
    assert conds == [{"type": "Ready", "status": "False", "reason": "ClusterNotReady",
                      "message": "1/3", "lastTransitionTime": T1}]


def test_a_status_change_moves_the_transition_time() -> None:
    conds: list[Any] = []
    set_condition(conds, Condition("Ready", "True", "ClusterReady"), T1)
    assert set_condition(conds, Condition("Ready", "Unknown", "ClusterStatusUnknown"), T2)
    assert (conds[0]["status"], conds[0]["lastTransitionTime"]) == ("Unknown", T2)
    assert set_condition(conds, Condition("Ready", "True", "ClusterReady"), T3)
    assert (conds[0]["status"], conds[0]["lastTransitionTime"]) == ("True", T3)


def test_nothing_new_is_no_change_and_the_default_clock_is_now() -> None:
    conds: list[Any] = []
    before = parse_rfc3339(now_rfc3339())
    assert set_condition(conds, Condition("Valid", "True", "Valid", "ok"))
    assert before <= parse_rfc3339(conds[0]["lastTransitionTime"]) \
        <= parse_rfc3339(now_rfc3339())
    copy = [dict(c) for c in conds]
    assert not set_condition(conds, Condition("Valid", "True", "Valid", "ok"), T3)
    assert conds == copy


def test_a_condition_keeps_its_place_its_other_fields_and_generation() -> None:
    heartbeat = {"type": "Ready", "status": "True", "reason": "ClusterReady", "message": "",
                 "lastTransitionTime": T1, "lastHeartbeatTime": T2}
    conds: list[Any] = [heartbeat, {"type": "Scheduled", "status": "True"}]
    assert set_condition(conds, Condition("Ready", "True", "ClusterReady", "", 4), T3)
    assert conds[0] == {**heartbeat, "observedGeneration": 4}
    assert heartbeat.get("observedGeneration") is None  # replaced, not edited in place
    assert conds[1] == {"type": "Scheduled", "status": "True"}
    assert set_condition(conds, Condition("Ready", "True", "ClusterReady"), T3)
    assert "observedGeneration" not in conds[0]


def test_a_condition_without_a_time_gets_one() -> None:
    conds: list[Any] = [{"type": "Ready", "status": "True", "reason": "WhatIf"}]
    assert set_condition(conds, Condition("Ready", "True", "WhatIf"), T1)
    assert conds[0]["lastTransitionTime"] == T1


def test_set_conditions_on_an_object_keeps_other_types() -> None:
    obj: dict[str, Any] = {}
    assert set_conditions(obj, [Condition("Valid", "True", "Valid"),
                                Condition("Conflict", "False", "NoConflicts")], T1)
    obj["status"]["conditions"].insert(0, {"type": "Other", "status": "True"})
    assert set_conditions(obj, [Condition("Conflict", "True", "PortConflict", "8000")], T2)
    assert [(c["type"], c["status"], c.get("lastTransitionTime"))
            for c in obj["status"]["conditions"]] == [
        ("Other", "True", None), ("Valid", "True", T1), ("Conflict", "True", T2)]
    untouched: dict[str, Any] = {"metadata": {}}
    assert not set_conditions(untouched, [])
    assert untouched == {"metadata": {}}


def test_readers_take_the_first_of_a_type_and_survive_odd_lists() -> None:
    conds = [None, "Ready", {"type": "Ready", "status": "False"},
             {"type": "Ready", "status": "True"}]
    assert find(conds, "Ready") == {"type": "Ready", "status": "False"}
    assert status_of(conds, "Ready") == "False"
    assert not is_true(conds, "Ready")
    assert find({"type": "Ready"}, "Ready") is None
    assert status_of(None, "Ready") == ""
    assert not is_true([{"type": "Ready", "status": True}], "Ready")
    assert Condition.of({"type": "Scheduled", "status": "True", "reason": "Success",
                         "lastTransitionTime": T1, "observedGeneration": 2}) == \
        Condition("Scheduled", "True", "Success", "", 2)


async def test_through_the_store_the_time_survives_a_reworded_condition(tmp_path: Path
                                                                        ) -> None:
    """What `flotilla describe cluster` shows as "Ready since": written through the API
    the way cluster health writes it, read back from the SQLite store."""
    async with registry_at(tmp_path) as registry:
        await stored_cluster(registry, "east-1")

        async def write(condition: Condition, now: str) -> dict[str, Any]:
            await converge(registry, CLUSTER, "", "east-1",
                           lambda obj: set_conditions(obj, [condition], now))
            stored = find((await registry.get(CLUSTER, "", "east-1"))["status"]["conditions"],
                          "Ready")
            assert stored is not None
            return dict(stored)

        first = await write(Condition("Ready", "False", "NodesNotReady", "0/2 ready"), T1)
        assert first["lastTransitionTime"] == T1
        reworded = await write(Condition("Ready", "False", "NodesNotReady", "1/2 ready"), T2)
        assert (reworded["message"], reworded["lastTransitionTime"]) == ("1/2 ready", T1)
        recovered = await write(Condition("Ready", "True", "ClusterReady", "2/2 ready"), T3)
        assert (recovered["status"], recovered["lastTransitionTime"]) == ("True", T3)
