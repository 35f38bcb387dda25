"""Field managers as Kubernetes keeps them: ownership recorded by ordinary writes and by
server-side apply, conflicts, forcing, and removal of fields a manager stops applying."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flotilla.api.apply.fieldset import decode, encode, fields_of
from flotilla.api.apply.managed import (
    ApplyConflicts,
    entries_of,
    server_side_apply,
    track_update,
)
from flotilla.api.patch.schema import KUBE_SCHEMAS

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def deploy(replicas: int = 2, image: str = "shop:1", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "default", "labels": dict(labels)},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "web", "image": image}]}}},
    }


def owners(obj: dict[str, Any]) -> dict[str, list[str]]:
    return {f"{e.manager}/{e.operation}": sorted("/".join(p) for p in e.fields)
            for e in entries_of(obj)}


def test_fields_v1_encoding_matches_kubernetes() -> None:
    fields = fields_of(deploy(app="shop"), KUBE_SCHEMAS["Deployment"])
    assert encode(fields) == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}}},
    }
    assert decode(encode(fields)) == fields


def test_apply_creates_and_records_an_apply_entry() -> None:
    obj = server_side_apply(None, deploy(), "alice", force=False, now=T0)
    (entry,) = obj["metadata"]["managedFields"]
    assert entry["manager"] == "alice"
    assert entry["operation"] == "Apply"
    assert entry["fieldsType"] == "FieldsV1"
    assert entry["time"] == T0
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]


def test_a_different_value_owned_by_another_manager_conflicts() -> None:
    live = server_side_apply(None, deploy(replicas=2), "alice", force=False, now=T0)
    with pytest.raises(ApplyConflicts) as err:
        server_side_apply(live, deploy(replicas=5), "bob", force=False, now=T1)
    (conflict,) = err.value.conflicts
    assert conflict.manager == "alice"
    assert conflict.field == ".spec.replicas"


def test_the_same_value_is_shared_and_force_takes_a_field_over() -> None:
    live = server_side_apply(None, deploy(replicas=2), "alice", force=False, now=T0)
    shared = server_side_apply(live, deploy(replicas=2), "bob", force=False, now=T1)
    assert "f:spec/f:replicas" in owners(shared)["alice/Apply"]
    assert "f:spec/f:replicas" in owners(shared)["bob/Apply"]
    forced = server_side_apply(shared, deploy(replicas=7), "bob", force=True, now=T1)
    assert forced["spec"]["replicas"] == 7
    assert "f:spec/f:replicas" not in owners(forced)["alice/Apply"]


def test_a_field_no_longer_applied_is_removed_unless_another_manager_owns_it() -> None:
    live = server_side_apply(None, deploy(app="shop", tier="web"), "alice", force=False,
                             now=T0)
    dropped = server_side_apply(live, deploy(app="shop"), "alice", force=False, now=T1)
    assert dropped["metadata"]["labels"] == {"app": "shop"}
    both = server_side_apply(live, deploy(tier="web"), "bob", force=False, now=T1)
    kept = server_side_apply(both, deploy(app="shop"), "alice", force=False, now=T1)
    assert kept["metadata"]["labels"] == {"app": "shop", "tier": "web"}


def test_a_list_item_no_longer_applied_is_removed() -> None:
    two = deploy()
    two["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "p"})
    live = server_side_apply(None, two, "alice", force=False, now=T0)
    one = server_side_apply(live, deploy(), "alice", force=False, now=T1)
    assert [c["name"] for c in one["spec"]["template"]["spec"]["containers"]] == ["web"]


def test_an_unchanged_apply_keeps_its_time() -> None:
    live = server_side_apply(None, deploy(), "alice", force=False, now=T0)
    again = server_side_apply(live, deploy(), "alice", force=False, now=T1)
    assert again["metadata"]["managedFields"][0]["time"] == T0


def test_an_update_takes_the_fields_it_changes_from_the_applier() -> None:
    live = server_side_apply(None, deploy(replicas=2), "alice", force=False, now=T0)
    new = copy.deepcopy(live)
    new["spec"]["replicas"] = 9
    track_update(live, new, "kubectl-scale", "apps/v1", T1)
    got = owners(new)
    assert got["kubectl-scale/Update"] == ["f:spec/f:replicas"]
    assert "f:spec/f:replicas" not in got["alice/Apply"]
    # ... so alice applying another value now conflicts with kubectl-scale.
    with pytest.raises(ApplyConflicts) as err:
        server_side_apply(new, deploy(replicas=3), "alice", force=False, now=T1)
    assert err.value.conflicts[0].manager == "kubectl-scale"


def test_an_update_that_removes_a_field_removes_it_from_every_manager() -> None:
    live = server_side_apply(None, deploy(app="shop"), "alice", force=False, now=T0)
    new = copy.deepcopy(live)
    del new["metadata"]["labels"]["app"]
    track_update(live, new, "kubectl-label", "apps/v1", T1)
    assert not any("f:app" in p for ps in owners(new).values() for p in ps)


def test_server_set_metadata_and_status_are_owned_by_nobody() -> None:
    obj = deploy()
    obj["metadata"].update(uid="u", resourceVersion="5", generation=2,
                           annotations={"flotilla.io/changed-by": "admin"})
    obj["status"] = {"replicas": 2}
    fields = fields_of(obj, KUBE_SCHEMAS["Deployment"])
    assert not any(p[0] in ("f:status", "f:apiVersion") for p in fields)
    assert not any(len(p) > 1 and p[1] in ("f:uid", "f:annotations") for p in fields)


def test_an_unchanged_apply_by_the_first_of_two_managers_changes_nothing() -> None:
    live = server_side_apply(None, deploy(app="shop"), "alice", force=False, now=T0)
    both = server_side_apply(live, deploy(app="shop"), "bob", force=False, now=T1)
    assert server_side_apply(both, deploy(app="shop"), "alice", force=False, now=T1) == both
