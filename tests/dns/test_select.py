"""Strategy selection, unit level: exact shares, rotation, failover order, geo fallback."""

from __future__ import annotations

import ipaddress
from collections import Counter

from flotilla.dns.geo import GeoTable
from flotilla.dns.model import GlobalName, Target
from flotilla.dns.select import Selector

EAST = Target("east", "cn-east", ("127.0.1.1",), 3)
SOUTH = Target("south", "cn-south", ("127.0.2.1", "fd00::2"), 1)
WEST = Target("west", "us-west", ("127.0.3.1",), 0)


def _name(strategy: str, *targets: Target, failover: tuple[str, ...] = ()) -> GlobalName:
    return GlobalName("shop.global.test", "default/shop", strategy, 5,  # type: ignore[arg-type]
                      targets, failover)


def test_weighted_gives_exact_shares_over_a_cycle_and_spreads_them() -> None:
    sel = Selector()
    name = _name("Weighted", EAST, SOUTH, WEST)
    picks = [sel.select(name, 4, None).addresses for _ in range(40)]
    assert Counter(picks) == {("127.0.1.1",): 30, ("127.0.2.1",): 10}
    assert picks[:4].count(("127.0.2.1",)) == 1  # smooth: not three east in a row then south


def test_all_zero_weights_share_evenly() -> None:
    sel = Selector()
    zero = [Target("a", "r", ("127.0.0.1",), 0), Target("b", "r", ("127.0.0.2",), 0)]
    picks = Counter(sel.select(_name("Weighted", *zero), 4, None).addresses for _ in range(10))
    assert picks == {("127.0.0.1",): 5, ("127.0.0.2",): 5}


def test_round_robin_rotates_every_address() -> None:
    sel = Selector()
    name = _name("RoundRobin", EAST, SOUTH, WEST)
    firsts = [sel.select(name, 4, None).addresses[0] for _ in range(6)]
    assert firsts == ["127.0.1.1", "127.0.2.1", "127.0.3.1"] * 2
    assert sel.select(name, 6, None).addresses == ("fd00::2",)


def test_failover_takes_first_listed_region_with_targets() -> None:
    sel = Selector()
    failover = ("eu-north", "cn-south", "cn-east")
    assert sel.select(_name("Failover", EAST, SOUTH, failover=failover), 4, None).addresses \
        == ("127.0.2.1",)
    assert sel.select(_name("Failover", EAST, failover=failover), 4, None).addresses \
        == ("127.0.1.1",)
    # no listed region is healthy: answer with everything rather than nothing
    assert set(sel.select(_name("Failover", WEST, EAST, failover=("x",)), 4, None).addresses) \
        == {"127.0.3.1", "127.0.1.1"}


def test_geo_picks_client_region_else_failover_else_all() -> None:
    geo = GeoTable.from_mapping({"10.0.0.0/8": "cn-east", "10.2.0.0/16": "us-west"})
    sel = Selector(geo)
    name = _name("Geo", EAST, SOUTH, WEST, failover=("cn-south",))
    ip = ipaddress.ip_address
    assert sel.select(name, 4, ip("10.1.2.3")).addresses == ("127.0.1.1",)
    assert sel.select(name, 4, ip("10.2.2.3")).addresses == ("127.0.3.1",)  # longest prefix
    unknown = sel.select(name, 4, ip("192.0.2.1"))
    assert unknown.addresses == ("127.0.2.1",)
    assert unknown.used_client_location
