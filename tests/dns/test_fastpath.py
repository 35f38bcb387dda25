"""The byte-level fast path answers exactly as the general dnspython path would."""

from __future__ import annotations

import dns.edns
import dns.message
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.dns import fastpath
from flotilla.dns.geo import GeoTable
from flotilla.dns.responder import Responder
from flotilla.dns.select import Selector
from flotilla.dns.zone import CompiledZones, compile_zones
from tests.dns.conftest import model_of
from tests.dns.objects import cluster, endpoint_slice, three_regions, traffic_policy

GEO = {"127.0.0.0/8": "cn-south"}


def _zones() -> CompiledZones:
    objects = dict(three_regions())
    objects["clusters"] = [*objects["clusters"], cluster("v6", "cn-east", "fd00::1")]
    objects["endpoint_slices"] = [*objects["endpoint_slices"],
                                  endpoint_slice("shop", "v6", [("127.0.4.10", 34001)])]
    objects["traffic_policies"] = [
        traffic_policy("shop", ["shop.global.test"]),
        traffic_policy("geo", ["geo.global.test"], service="shop", strategy="Locality"),
        traffic_policy("w", ["w.global.test"], service="shop", strategy="WeightedRoundRobin",
                       weights=[{"cluster": "east", "weight": 2}]),
    ]
    return compile_zones(model_of(objects), serial=7, ns_addresses=["127.0.0.53"])


ZONES = _zones()


def _pair() -> tuple[Responder, Responder]:
    fast = Responder(ZONES, Selector(GeoTable.from_mapping(GEO)))
    slow = Responder(ZONES, Selector(GeoTable.from_mapping(GEO)), fast_path=False)
    return fast, slow


def _wire(name: str, rdtype: str, *, edns: int = -1, payload: int = 1232,
          options: list[dns.edns.Option] | None = None, rd: bool = True) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload,
                               options=options)
    if not rd:
        q.flags = 0
    q.id = 4242
    return q.to_wire()


V4_ONLY = {"south.shop.default.svc.clusterset.local",
           "shop-0.v6.shop.default.svc.clusterset.local", "ns.global.test"}
COOKIE = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)


@pytest.mark.parametrize("name", [
    "shop.global.test", "GEO.Global.TEST", "w.global.test",
    "shop.default.svc.clusterset.local", "SOUTH.shop.default.svc.clusterset.local",
    "shop-0.v6.shop.default.svc.clusterset.local", "ns.global.test",
])
@pytest.mark.parametrize(("rdtype", "kw"), [
    ("A", {}),
    ("A", {"edns": 0}),
    ("A", {"edns": 0, "payload": 4096}),
    ("A", {"edns": 0, "options": [COOKIE]}),
    ("A", {"rd": False}),
    ("AAAA", {"edns": 0}),
])
@pytest.mark.parametrize("tcp", [False, True])
def test_fast_and_general_paths_give_the_same_bytes(
    name: str, rdtype: str, kw: dict[str, object], tcp: bool,
) -> None:
    wire = _wire(name, rdtype, **kw)  # type: ignore[arg-type]
    fast_expected = rdtype == "A" or name.lower() not in V4_ONLY  # else NODATA: general
    taken = fastpath.answer(wire, ZONES.fast, Selector(), "127.0.0.1", tcp=tcp) is not None
    assert taken == fast_expected
    fast, slow = _pair()
    for _ in range(4):  # the rotation/WRR state must advance identically too
        f, f_outcome = fast.respond(wire, "127.0.0.1", tcp=tcp)
        s, s_outcome = slow.respond(wire, "127.0.0.1", tcp=tcp)
        assert f == s
        assert f_outcome == s_outcome


@pytest.mark.parametrize("wire", [
    _wire("shop.global.test", "A", edns=0,
          options=[dns.edns.ECSOption("10.0.0.0", 8)]),      # ECS: general path
    _wire("shop.global.test", "MX"),                          # not A/AAAA
    _wire("nothing.global.test", "A"),                        # NXDOMAIN
    _wire("_http._tcp.shop.default.svc.clusterset.local", "SRV"),  # needs glue
    _wire("east.shop.default.svc.clusterset.local", "AAAA"),  # static NODATA
    _wire("shop.global.test", "A", edns=1),                   # BADVERS
    _wire("shop.global.test", "A") + b"\x00",                 # trailing junk
])
def test_other_shapes_take_the_general_path(wire: bytes) -> None:
    assert fastpath.answer(wire, ZONES.fast, Selector(), "127.0.0.1", tcp=False) is None


def test_nodata_takes_the_general_path() -> None:
    policies = [traffic_policy("shop", ["a.global.test"])]
    zones = compile_zones(model_of({**three_regions(), "traffic_policies": policies}))
    wire = _wire("a.global.test", "AAAA")
    assert fastpath.answer(wire, zones.fast, Selector(), None, tcp=False) is None


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["shop.global.test", "geo.global.test", "w.global.test",
                          "shop.default.svc.clusterset.local"]).flatmap(
        lambda n: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in n))
    ).map("".join),
    edns=st.sampled_from([-1, 0]),
    payload=st.integers(min_value=0, max_value=65535),
    tcp=st.booleans(),
)
def test_paths_agree_on_random_case_and_payload(
    name: str, edns: int, payload: int, tcp: bool,
) -> None:
    wire = _wire(name, "A", edns=edns, payload=payload)
    fast, slow = _pair()
    assert fast.respond(wire, "127.0.0.1", tcp=tcp) == slow.respond(wire, "127.0.0.1", tcp=tcp)
