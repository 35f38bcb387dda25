"""Each balancer's distribution, alone (no sockets), and the feedback the backend runtime
keeps for them; clock and randomness are injected, so nothing here sleeps."""

from __future__ import annotations

import random
import typing
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.resources.models.traffic import StrategyType
from flotilla.traffic.backend import BackendRuntime
from flotilla.traffic.balancers import table
from flotilla.traffic.balancers.base import BalancerInputs, PickContext
from flotilla.traffic.balancers.consistent_hash import Maglev, RingHash
from flotilla.traffic.balancers.least_request import LeastRequest
from flotilla.traffic.balancers.locality import LocalityPriority
from flotilla.traffic.balancers.random_pick import RandomPick
from flotilla.traffic.balancers.round_robin import RoundRobin, SmoothWeighted
from flotilla.traffic.metrics import GatewayMetrics
from flotilla.traffic.model import Backend, Endpoint, Policy, Strategy
from flotilla.traffic.upstream import Upstream


def ups(n: int, weights: list[int] | None = None, region: str = "r1") -> list[Upstream]:
    return [Upstream(Endpoint(f"c{i}", region, "z", "127.0.0.1", 10000 + i,
                              weight=(weights[i] if weights else 1))) for i in range(n)]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def runtime(strategy: str, upstreams: list[Upstream], clock: Clock | None = None,
            rng: random.Random | None = None,
            balancers: typing.Mapping[str, table.Factory] = table.BALANCERS) -> BackendRuntime:
    policy = Policy("p", "ns", "svc", ("h",), strategy=Strategy(strategy))
    return BackendRuntime(Backend(policy, tuple(u.endpoint for u in upstreams)), upstreams,
                          "r1", GatewayMetrics(), clock=clock or Clock(),
                          rng=rng or random.Random(0), balancers=balancers)


# No per-example deadline: this machine is shared, and a slow example is not a failure.
@settings(deadline=None)
@given(st.integers(min_value=1, max_value=20), st.integers(min_value=1, max_value=5))
def test_round_robin_gives_exact_shares_over_full_cycles(n: int, cycles: int) -> None:
    u = ups(n)
    rr = RoundRobin()
    picks = Counter(rr.pick(PickContext(u)) for _ in range(n * cycles))
    assert all(picks[x] == cycles for x in u)


@settings(deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=8))
def test_smooth_wrr_gives_exact_weights_over_a_cycle_and_interleaves(
        weights: list[int]) -> None:
    u = ups(len(weights), weights)
    wrr = SmoothWeighted()
    ctx = PickContext(u)
    seq = [wrr.pick(ctx) for _ in range(sum(weights))]
    counts = Counter(seq)
    assert [counts[x] for x in u] == weights
    # smooth: the heaviest endpoint's picks are interleaved with the others, never one
    # burst of its whole weight (what plain weighted round robin does)
    top = max(range(len(u)), key=lambda i: weights[i])
    others = sum(weights) - weights[top]
    longest = run = 0
    for x in seq:
        run = run + 1 if x is u[top] else 0
        longest = max(longest, run)
    if others and weights[top] > 1:
        assert longest < weights[top]


def test_smooth_wrr_matches_nginx_sequence() -> None:
    a, b, c = ups(3, [5, 1, 1])
    wrr = SmoothWeighted()
    seq = [wrr.pick(PickContext([a, b, c])) for _ in range(7)]
    assert seq == [a, a, b, a, c, a, a]


def test_least_request_prefers_the_idle_endpoint() -> None:
    busy, idle = ups(2)
    busy.inflight = 5
    lr = LeastRequest(random.Random(1))
    assert all(lr.pick(PickContext([busy, idle])) is idle for _ in range(50))


def test_least_request_spreads_by_load_over_many() -> None:
    u = ups(10)
    rt = runtime("LeastRequest", u, rng=random.Random(2))
    for _ in range(1000):  # every pick stays in flight: the load must even out
        picked = rt.pick(PickContext(rt.candidates))
        assert picked is not None
        rt.try_started(picked)
    loads = [x.inflight for x in u]
    assert max(loads) - min(loads) <= 3


def test_every_way_a_try_ends_settles_its_in_flight_count() -> None:
    u = ups(3)
    rt = runtime("LeastRequest", u)
    for end in (lambda x: rt.try_succeeded(x, 0.01), lambda x: rt.try_failed(x, 0.01),
                lambda x: rt.try_failed(x, 0.01, connect=True), rt.try_abandoned):
        for x in u:
            rt.try_started(x)
            rt.try_started(x)
        assert [x.inflight for x in u] == [2, 2, 2]
        for x in u:
            end(x)
            end(x)
        assert [x.inflight for x in u] == [0, 0, 0]


def test_least_request_honours_retry_exclusion() -> None:
    a, b = ups(2)
    lr = LeastRequest(random.Random(3))
    assert all(lr.pick(PickContext([a, b], exclude=(a,))) is b for _ in range(20))


def _keys(n: int) -> list[bytes]:
    return [f"user-{i}".encode() for i in range(n)]


def _moved_share(cls: type, n: int) -> float:
    u = ups(n)
    before = cls(u)
    ctx = lambda k, c: PickContext(c, hash_key=k)  # noqa: E731
    owner = {k: before.pick(ctx(k, u)) for k in _keys(4000)}
    removed = u[n // 2]
    rest = [x for x in u if x is not removed]
    after = cls(rest)
    moved = sum(1 for k, o in owner.items() if o is not removed
                and after.pick(ctx(k, rest)) is not o)
    return moved / len(owner)


def test_consistent_hash_is_sticky_and_moves_about_one_nth() -> None:
    for cls in (Maglev, RingHash):
        u = ups(10)
        h = cls(u)
        for k in _keys(200):
            first = h.pick(PickContext(u, hash_key=k))
            assert all(h.pick(PickContext(u, hash_key=k)) is first for _ in range(3))
        # removing 1 of 10: only that endpoint's ~1/10 of keys must move; the keys of
        # the others may move a little (Maglev) or not at all (ring)
        assert _moved_share(cls, 10) < 0.05, cls


def test_consistent_hash_skips_an_ejected_endpoint_and_returns_to_it() -> None:
    u = ups(5)
    h = Maglev(u)
    key = b"user-42"
    home = h.pick(PickContext(u, hash_key=key))
    assert home is not None
    home.ejected_until = 1e18
    home.refresh(0)
    available = [x for x in u if x.available]
    other = h.pick(PickContext(available, hash_key=key))
    assert other is not home
    assert h.pick(PickContext(available, hash_key=key)) is other  # stable while out
    home.ejected_until = 0
    home.refresh(0)
    assert h.pick(PickContext(u, hash_key=key)) is home


def test_consistent_hash_balances_keys() -> None:
    u = ups(8)
    h = Maglev(u)
    counts = Counter(h.pick(PickContext(u, hash_key=k)) for k in _keys(8000))
    assert min(counts.values()) > 800 and max(counts.values()) < 1200  # noqa: PT018


def _regions() -> list[Upstream]:
    out = []
    for region, n in (("cn-east", 4), ("cn-south", 2), ("us-west", 2)):
        out += [Upstream(Endpoint(f"{region}-{i}", region, "z", "127.0.0.1", 1000 + len(out)))
                for i in range(n)]
    return out


def test_locality_stays_in_the_preferred_region_while_healthy() -> None:
    u = _regions()
    loc = LocalityPriority(u, ["cn-south", "us-west"], "cn-east", 0.7)
    picks = {loc.pick(PickContext(u)).endpoint.region for _ in range(40)}  # type: ignore[union-attr]
    assert picks == {"cn-east"}
    # the client's region header overrides the gateway's own region
    picks = {loc.pick(PickContext(u, region="us-west")).endpoint.region  # type: ignore[union-attr]
             for _ in range(40)}
    assert picks == {"us-west"}


def test_locality_spills_in_the_configured_order() -> None:
    u = _regions()
    loc = LocalityPriority(u, ["cn-south", "us-west"], "cn-east", 0.7)
    east = [x for x in u if x.endpoint.region == "cn-east"]
    south = [x for x in u if x.endpoint.region == "cn-south"]

    def regions(healthy: list[Upstream]) -> set[str]:
        return {loc.pick(PickContext(healthy)).endpoint.region  # type: ignore[union-attr]
                for _ in range(40)}

    def down(*gone: Upstream) -> list[Upstream]:
        for x in u:
            x.healthy = x not in gone
            x.refresh(0)
        return [x for x in u if x.available]

    assert regions(down(east[0])) == {"cn-east"}  # 3/4 = 75% >= 70%: stay
    assert regions(down(east[0], east[1])) == {"cn-south"}  # 50% < 70%: spill, in order
    assert regions(down(*east, south[0])) == {"us-west"}  # south at 50% too: next
    # everything degraded: the first region that has anything left
    assert regions(down(*east, south[0], u[-1])) == {"cn-south"}


def test_latency_prefers_the_fast_endpoint_and_forgives_later() -> None:
    fast, slow = ups(2)
    clock = Clock()
    rt = runtime("Latency", [fast, slow], clock, random.Random(4))
    for u, latency in ((fast, 0.002), (slow, 0.200)):
        rt.try_started(u)
        rt.try_succeeded(u, latency)
    assert all(rt.pick(PickContext([fast, slow])) is fast for _ in range(50))
    # two minutes pass; the fast endpoint keeps answering, the slow one had no news: its
    # old sample has decayed, and it is tried again while the fast one is busy
    clock.now += 120
    rt.try_started(fast)
    rt.try_succeeded(fast, 0.002)
    for _ in range(3):
        rt.try_started(fast)
    assert rt.pick(PickContext([fast, slow])) is slow


def test_latency_sends_nearly_everything_to_the_nearest_and_leaves_it_when_it_slows() -> None:
    """Three clusters at 5/40/80 ms one way (round trips 10/80/160 ms), one request at
    a time: at least 90% to the nearest (two random choices would give it at most 2 in
    3), and the first slow answer of the nearest sends the next requests elsewhere."""
    u = ups(3)
    round_trip = {u[0]: 0.010, u[1]: 0.080, u[2]: 0.160}
    clock = Clock()
    rt = runtime("Latency", u, clock, random.Random(7))

    def serve(count: int) -> Counter[Upstream]:
        picks: Counter[Upstream] = Counter()
        for _ in range(count):
            x = rt.pick(PickContext(u))
            assert x is not None
            picks[x] += 1
            rt.try_started(x)
            clock.now += round_trip[x]
            rt.try_succeeded(x, round_trip[x])
            clock.now += 0.05  # the next request of a closed loop
        return picks

    picks = serve(600)
    assert picks[u[0]] >= 0.9 * 600, picks
    assert picks[u[1]] > 0  # the others are still probed now and then
    round_trip[u[0]] = 0.240  # the nearest's latency rises to 120 ms
    after = serve(50)
    assert after[u[0]] <= 2, after
    assert after[u[1]] > after[u[2]]


def test_latency_counts_a_failure_as_slow() -> None:
    good, failing = ups(2)
    rt = runtime("Latency", [good, failing], Clock(), random.Random(5))
    for u, ok in ((good, True), (failing, False)):
        rt.try_started(u)
        if ok:
            rt.try_succeeded(u, 0.01)
        else:
            rt.try_failed(u, 0.001)  # fails fast, yet must not look fast
    assert all(rt.pick(PickContext([good, failing])) is good for _ in range(50))


def test_only_a_latency_reading_balancer_pays_for_the_ewma() -> None:
    u = ups(2)
    rt = runtime("RoundRobin", u)
    rt.try_started(u[0])
    rt.try_succeeded(u[0], 0.5)
    assert u[0].ewma == 0.0
    assert runtime("Latency", u).reads_latency


@pytest.mark.parametrize("cls", [RandomPick, LeastRequest])
def test_random_choices_follow_the_injected_generator(cls: type) -> None:
    u = ups(8)
    first, second = cls(random.Random(7)), cls(random.Random(7))
    seq = [first.pick(PickContext(u)) for _ in range(50)]
    assert seq == [second.pick(PickContext(u)) for _ in range(50)]
    assert len(set(seq)) > 1


def test_a_new_strategy_is_one_table_entry() -> None:
    class First(RoundRobin):
        def pick(self, ctx: PickContext) -> Upstream | None:
            return ctx.candidates[0] if ctx.candidates else None

    u = ups(3)
    rt = runtime("First", u, balancers={**table.BALANCERS, "First": lambda i: First()})
    assert rt.pick(PickContext(u)) is u[0]


def test_an_unknown_strategy_is_named_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown strategy 'Fastest'; one of .*RoundRobin"):
        runtime("Fastest", ups(2))


def test_every_strategy_the_api_accepts_has_a_balancer() -> None:
    accepted = typing.get_args(StrategyType)
    assert accepted
    assert set(accepted) <= set(table.BALANCERS)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["RoundRobin", "WeightedRoundRobin", "Random", "LeastRequest",
                        "ConsistentHash", "Locality", "Latency", "Maglev", "RingHash"]),
       st.integers(min_value=0, max_value=6))
def test_every_strategy_picks_a_candidate_or_none(name: str, n: int) -> None:
    u = ups(n)
    b = table.create(name, BalancerInputs(u, Policy("p", "ns", "svc", ("h",)), "r1",
                                          Clock(), random.Random(n)))
    for i in range(10):
        got = b.pick(PickContext(u, hash_key=str(i).encode()))
        assert (got in u) if n else got is None
