"""Rollouts end to end: a server, three agents (real shop processes) and a gateway under
a bounded load. The tests run in order and share the plane: good version (v2) wave by
wave, bad version (v3) rolled back at the canary, undo, and a server restart mid-rollout
(v4)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flotilla.resources.rollout_state import PINS, STATE
from tests.helpers import wait_for_sync
from tests.rollout.harness import NAMES, Load, Plane, base_objects, deployment, rollout_policy
from tests.up.harness import SHOP_APP, environ_of, proc_table

pytestmark = pytest.mark.timeout(400)


def shop_envs() -> dict[str, set[str]]:
    """SHOP_VERSION(+fail) of every live shop process of our clusters, per cluster."""
    out: dict[str, set[str]] = {n: set() for n in NAMES}
    for pid, _pgid, state, cmd in proc_table():
        if state == "Z" or SHOP_APP not in cmd:
            continue
        env = environ_of(pid)
        if env.get("CLUSTER_NAME") in out:
            tag = env.get("SHOP_VERSION", "?") + ("+fail" if env.get("SHOP_FAIL_RATE") else "")
            out[env["CLUSTER_NAME"]].add(tag)
    return out


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    p = Plane(tmp_path_factory.mktemp("rollout"))
    try:
        p.start()
        p.apply([*base_objects(), deployment("v1"), rollout_policy()], "v1")
        wait_for_sync(lambda: shop_envs() == {n: {"v1"} for n in NAMES}, 90,
                      what="v1 running on every cluster")
        wait_for_sync(lambda: (p.annotation(STATE) or {}).get("phase") == "Succeeded", 30,
                      what="the rollout controller adopting revision 1")
        wait_for_sync(p.gateway_serves_every_cluster, 30, what="the gateway routing")
        yield p
    finally:
        p.stop()
        wait_for_sync(lambda: not any(shop_envs().values()), 30, what="pods gone")


def status(plane: Plane) -> tuple[int, str]:
    result = plane.cli("rollout", "status", "deploy/shop", "--timeout", "150", timeout=170)
    return result.returncode, result.stdout + result.stderr


def serving(load: Load) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for (cluster, version), _n in load.answers.items():
        out.setdefault(cluster, set()).add(version)
    return out


def test_a_good_version_goes_out_wave_by_wave_without_a_failed_request(plane: Plane) -> None:
    load = Load(f"http://{plane.gateway}/").start()
    try:
        wait_for_sync(lambda: load.served() > 30, 30, what="load flowing")
        plane.apply([deployment("v2")], "v2")
        code, out = status(plane)
        assert code == 0, out
        assert "Succeeded" in out
        assert "3/3 clusters" in out
    finally:
        load.stop()
    state: dict[str, Any] = plane.annotation(STATE)
    records = state["records"]
    assert [r["wave"] for r in records] == [0, 1, 2]
    assert [r["clusters"] for r in records] == [["r-east"], ["r-south"], ["r-west"]]
    for before, after in itertools.pairwise(records):
        # no wave starts before the previous one's gate passed
        assert after["started_at"] >= before["ended_at"]
    assert all(r["result"] == "passed" and r["figures"]["requests"] >= 10 for r in records)
    assert load.failed == [], load.failed[:5]
    assert shop_envs() == {n: {"v2"} for n in NAMES}
    assert state["stable"] == state["revision"]


def test_a_bad_version_is_stopped_at_the_canary_and_rolled_back(plane: Plane) -> None:
    seen: dict[str, set[str]] = {n: set() for n in NAMES}
    load = Load(f"http://{plane.gateway}/").start()
    try:
        wait_for_sync(lambda: load.served() > 30, 30, what="load flowing")
        before = load.total()
        plane.apply([deployment("v3", fail_rate=1.0)], "v3")

        def failed_and_sampled() -> bool:
            for cluster, tags in shop_envs().items():
                seen[cluster] |= tags
            return (plane.annotation(STATE) or {}).get("phase") == "Failed"
        try:
            wait_for_sync(failed_and_sampled, 60, interval=0.3, what="the rollout Failed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {plane.annotation(STATE)}") from None
        during = load.total() - before
        code, out = status(plane)
        assert code != 0, out
        assert "error rate" in out, out
        wait_for_sync(lambda: shop_envs() == {n: {"v2"} for n in NAMES}, 60,
                      what="the canary back on v2")
    finally:
        load.stop()
    # the other clusters never ran the bad version
    assert "v3+fail" in seen["r-east"]
    assert "v3+fail" not in seen["r-south"] | seen["r-west"]
    state = plane.annotation(STATE)
    assert [r["wave"] for r in state["records"][-1:]] == [0]
    assert state["records"][-1]["result"] == "failed"
    # failures came from the canary only, at most its share of the traffic
    assert load.failed
    assert all(f.endswith("r-east") for f in load.failed), load.failed[:5]
    assert len(load.failed) <= during / len(NAMES) + 10
    assert set(plane.annotation(PINS).values()) == {state["stable"]}


def test_undo_restores_the_previous_revision_everywhere(plane: Plane) -> None:
    result = plane.cli("rollout", "undo", "deploy/shop")
    assert result.returncode == 0, result.stderr
    code, out = status(plane)
    assert code == 0, out
    wait_for_sync(lambda: shop_envs() == {n: {"v2"} for n in NAMES}, 60,
                  what="v2 everywhere")
    history = plane.cli("rollout", "history", "deploy/shop")
    assert "undo to revision" in history.stdout, history.stdout
    # Who: the API stamps the caller's token name (the harness's "rollout-test") on
    # every write; no revision is by "unknown".
    rows = history.stdout.splitlines()[1:]
    assert rows
    assert all(row.split()[2] == "rollout-test" for row in rows), history.stdout


def test_a_server_restart_mid_rollout_resumes_where_it_was(plane: Plane) -> None:
    plane.apply([rollout_policy(pause="4s")], "policy-slow")
    load = Load(f"http://{plane.gateway}/").start()
    try:
        wait_for_sync(lambda: load.served() > 30, 30, what="load flowing")
        plane.apply([deployment("v4")], "v4")
        wait_for_sync(lambda: len((plane.annotation(STATE) or {}).get("records", [])) >= 1
                      and plane.annotation(STATE)["records"][-1]["clusters"] == ["r-east"]
                      and plane.annotation(STATE)["revision"] > 4, 60,
                      what="the canary wave of v4 passed")
        plane.restart_server()
        code, out = status(plane)
        assert code == 0, out
    finally:
        load.stop()
    state = plane.annotation(STATE)
    v4 = [r for r in state["records"] if r["started_at"] >= state["records"][-3]["started_at"]]
    assert [r["wave"] for r in v4] == [0, 1, 2]
    wait_for_sync(lambda: shop_envs() == {n: {"v4"} for n in NAMES}, 30,
                  what="v4 everywhere")
    assert load.failed == [], load.failed[:5]


def test_manual_pause_waits_for_a_person_and_abort_goes_back(plane: Plane) -> None:
    plane.apply([rollout_policy(pause="manual")], "policy-manual")
    load = Load(f"http://{plane.gateway}/").start()
    try:
        wait_for_sync(lambda: load.served() > 30, 30, what="load flowing")
        plane.apply([deployment("v5")], "v5")
        wait_for_sync(lambda: (plane.annotation(STATE) or {}).get("phase") == "Paused", 60,
                      what="paused after the canary wave")
    finally:
        load.stop()
    shown = plane.cli("rollout", "status", "deploy/shop", "--no-follow")
    assert shown.returncode == 0, shown.stderr
    assert "Paused" in shown.stdout
    assert "1/3 clusters" in shown.stdout
    assert shop_envs()["r-south"] == {"v4"}  # nothing moves while paused
    result = plane.cli("rollout", "abort", "deploy/shop")
    assert result.returncode == 0, result.stderr
    code, out = status(plane)
    assert code != 0, out
    assert "Aborted" in out
    wait_for_sync(lambda: shop_envs() == {n: {"v4"} for n in NAMES}, 60,
                  what="v4 back everywhere")


def test_a_version_that_never_becomes_ready_is_rolled_back(plane: Plane) -> None:
    plane.apply([rollout_policy(ready_timeout="8s")], "policy-ready")
    # /ready answers 500 with SHOP_FAIL_RATE=1: the readiness probe never passes
    plane.apply([deployment("v6", fail_rate=1.0, ready_path="/ready")], "v6")
    code, out = status(plane)
    assert code != 0, out
    assert "not ready" in out, out
    state = plane.annotation(STATE)
    assert state["phase"] == "Failed"
    assert [r["clusters"] for r in state["records"][-1:]] == [["r-east"]]
    wait_for_sync(lambda: shop_envs() == {n: {"v4"} for n in NAMES}, 60,
                  what="the canary back on v4")


def test_a_version_that_never_starts_is_rolled_back_after_ready_timeout(
        plane: Plane) -> None:
    # The policy and the Deployment in one apply, as a manifest carrying both is applied
    # (bench/rollout_bench.py's nostart): the policy's readyTimeout is the one in force.
    plane.apply([rollout_policy(ready_timeout="8s"),
                 deployment("v7", fail_rate="not-a-number")], "v7")
    applied = time.monotonic()
    code, out = status(plane)
    assert code != 0, out
    assert "not ready after 8s" in out, out
    assert time.monotonic() - applied >= 8  # not before readyTimeout
    state = plane.annotation(STATE)
    assert state["phase"] == "Failed"
    assert [r["clusters"] for r in state["records"][-1:]] == [["r-east"]]
    assert set(plane.annotation(PINS).values()) == {state["stable"]}
    wait_for_sync(lambda: shop_envs() == {n: {"v4"} for n in NAMES}, 60,
                  what="the canary back on v4, no v7 process left")


def one_version_everywhere() -> str | None:
    """The version every cluster runs, when they all run the same one and only it."""
    envs = shop_envs()
    versions = set().union(*envs.values())
    return next(iter(versions)) if len(versions) == 1 and all(envs.values()) else None


def test_a_superseded_rollout_that_fails_ends_with_every_cluster_on_one_revision(
        plane: Plane) -> None:
    # Wave 2 waits for `rollout resume`; the last wave then waits for requests, and the
    # test sends none until the next revision is recorded: revision A is held in its
    # last wave, on every cluster, without racing the controller.
    plane.apply([rollout_policy(waves=[{"clusters": ["r-east"]},
                                       {"percent": 60, "pause": "manual"},
                                       {"percent": 100}])], "policy-superseded")
    stable_version = wait_for_sync(one_version_everywhere, 90, what="one version everywhere")
    stable = plane.annotation(STATE)["stable"]
    load = Load(f"http://{plane.gateway}/").start()
    try:
        wait_for_sync(lambda: load.served() > 30, 30, what="load flowing")
        plane.apply([deployment("v7")], "v7")
        wait_for_sync(lambda: (s := plane.annotation(STATE) or {}).get("phase") == "Paused"
                      and [r["clusters"] for r in s["records"]] == [["r-east"], ["r-south"]],
                      120, what="revision A paused after its second wave")
    finally:
        load.stop()
    revision_a = plane.annotation(STATE)["revision"]
    assert plane.cli("rollout", "resume", "deploy/shop").returncode == 0

    def last_wave_waiting_for_requests() -> bool:
        s = plane.annotation(STATE) or {}
        return s.get("wave") == 2 and "requests observed" in s.get("message", "") \
            and shop_envs()["r-west"] == {"v7"}
    wait_for_sync(last_wave_waiting_for_requests, 120, interval=0.3,
                  what="revision A in its last wave")
    assert shop_envs() == {n: {"v7"} for n in NAMES}
    assert plane.annotation(STATE)["phase"] == "Progressing"

    seen: dict[str, set[str]] = {n: set() for n in NAMES}
    plane.apply([deployment("v8", fail_rate=1.0)], "v8")
    wait_for_sync(lambda: (plane.annotation(STATE) or {}).get("revision") == revision_a + 1,
                  60, what="revision B recorded")
    revision_b = revision_a + 1
    load = Load(f"http://{plane.gateway}/").start()
    try:
        def failed_and_sampled() -> bool:
            for cluster, tags in shop_envs().items():
                seen[cluster] |= tags
            return (plane.annotation(STATE) or {}).get("phase") == "Failed"
        try:
            wait_for_sync(failed_and_sampled, 120, interval=0.3, what="revision B Failed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {plane.annotation(STATE)}") from None
        wait_for_sync(lambda: shop_envs() == {n: {stable_version} for n in NAMES}, 120,
                      what=f"every cluster back on {stable_version}")
    finally:
        load.stop()
    state = plane.annotation(STATE)
    assert (state["revision"], state["stable"]) == (revision_b, stable)
    assert set(plane.annotation(PINS).values()) == {stable}
    assert "v8+fail" in seen["r-east"]
    assert "v8+fail" not in seen["r-south"] | seen["r-west"]
    # users met the bad version at the canary only (the other clusters were rolled back
    # from revision A, never updated to B)
    assert any("injected failure" in f for f in load.failed), load.failed[:5]
    elsewhere = [f for f in load.failed if "injected failure" in f
                 and not f.endswith("r-east")]
    assert not elsewhere, elsewhere[:5]

    code, out = status(plane)
    assert code != 0, out
    assert f"r-east: revision {stable} (rolled back: revision {revision_b} failed its " \
        "error-rate gate at the canary" in out, out
    for cluster in ("r-south", "r-west"):
        assert f"{cluster}: revision {stable} (rolled back from revision {revision_a}, " \
            f"whose rollout revision {revision_b} superseded: revision {revision_b} " \
            "failed its error-rate gate at the canary" in out, out
    assert f"rolled back to stable revision {stable} on every cluster" in out, out
