"""The fairness rule on its own, on a clock the test drives: which level a caller is in,
how buckets refill, what a refusal says, and the watch slots and lifetimes. The real
server's behaviour is in test_fairness.py; these pin the arithmetic."""

from __future__ import annotations

import pytest

from flotilla.api.auth import Principal
from flotilla.api.errors import TooManyRequestsError
from flotilla.api.fairness import EXEMPT, SYSTEM, WORKLOAD, Fairness, level_of
from flotilla.api.fairness_config import FairnessConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ALICE = Principal("alice", "edit")
BOB = Principal("bob", "view")
AGENT = Principal("agent-east-1", "agent", cluster="east-1")


def test_levels_follow_the_role() -> None:
    assert level_of(Principal("admin", "admin")) == EXEMPT
    assert level_of(AGENT) == SYSTEM
    assert level_of(Principal("gateway", "gateway")) == SYSTEM
    assert level_of(Principal("dns", "dns")) == SYSTEM
    assert level_of(ALICE) == WORKLOAD
    assert level_of(Principal("ci", "my-custom-role")) == WORKLOAD


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    fair = Fairness(FairnessConfig(user_rate=2, user_burst=3, users_total_rate=0), clock)
    for _ in range(3):
        fair.admit(ALICE)
    with pytest.raises(TooManyRequestsError) as refused:
        fair.admit(ALICE)
    assert refused.value.retry_after == 1  # 0.5 s to the next token, whole seconds up
    assert "'alice'" in refused.value.message
    assert "2 requests/s (burst 3)" in refused.value.message
    clock.now += 0.5  # one token back
    fair.admit(ALICE)
    with pytest.raises(TooManyRequestsError):
        fair.admit(ALICE)
    fair.admit(BOB)  # bob's bucket is his own
    assert fair.rejected == {WORKLOAD: 2}


def test_users_share_one_level_bucket_that_agents_do_not_draw_from() -> None:
    clock = Clock()
    fair = Fairness(FairnessConfig(user_rate=100, user_burst=100, users_total_rate=2,
                                   system_rate=1, system_burst=1), clock)
    for _ in range(4):  # the level's burst: twice its rate
        fair.admit(ALICE)
    with pytest.raises(TooManyRequestsError) as refused:
        fair.admit(BOB)
    assert "all users together" in refused.value.message
    fair.admit(AGENT)  # the system level has its own buckets
    with pytest.raises(TooManyRequestsError):
        fair.admit(AGENT)  # ... and an agent flooding is limited by its own
    clock.now += 0.5
    fair.admit(BOB)


def test_a_refused_request_costs_nothing() -> None:
    clock = Clock()
    fair = Fairness(FairnessConfig(user_rate=1, user_burst=1, users_total_rate=0), clock)
    fair.admit(ALICE)
    for _ in range(100):
        with pytest.raises(TooManyRequestsError):
            fair.admit(ALICE)
    clock.now += 1.0
    fair.admit(ALICE)  # hammering did not push the next token further away


def test_admin_is_exempt_and_zero_rate_turns_a_bucket_off() -> None:
    fair = Fairness(FairnessConfig(user_rate=0, users_total_rate=0), Clock())
    for _ in range(1000):
        fair.admit(Principal("admin", "admin"))
        fair.admit(ALICE)


def test_watch_slots_and_randomised_lifetimes() -> None:
    clock = Clock()
    draws = iter([0.0, 0.999, 0.5])
    fair = Fairness(FairnessConfig(max_watches=2, min_watch_timeout=30), clock,
                    rand=lambda: next(draws))
    first, second = fair.open_watch(ALICE), fair.open_watch(ALICE)
    assert first.deadline - clock.now == 30  # [min, 2*min)
    assert second.deadline - clock.now == pytest.approx(59.97)
    with pytest.raises(TooManyRequestsError) as refused:
        fair.open_watch(ALICE)
    assert "limit is 2" in refused.value.message
    first.release()
    first.release()  # idempotent: one slot back, not two
    assert fair.open_watches("alice") == 1
    fair.open_watch(ALICE)
    with pytest.raises(TooManyRequestsError):
        fair.open_watch(ALICE)


def test_bad_settings_are_named() -> None:
    problems = FairnessConfig(user_rate=-1, user_burst=0, min_watch_timeout=0).problems()
    assert any("--user-rate" in p for p in problems)
    assert any("--user-burst" in p for p in problems)
    assert any("--min-watch-timeout" in p for p in problems)
    assert FairnessConfig().problems() == []
