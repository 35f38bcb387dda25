"""What `dig` sees: strategies, health, clusterset.local, SOA/NS, negative answers, TCP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.dns.conftest import Serve, dig, model_of, needs_dig, run_dig
from tests.dns.objects import cluster, endpoint_slice, three_regions, traffic_policy

pytestmark = needs_dig

EAST, SOUTH, WEST = "127.0.1.1", "127.0.2.1", "127.0.3.1"


def _with(policy: dict[str, object], **changes: object) -> dict[str, list[dict[str, object]]]:
    objects: dict[str, list[dict[str, object]]] = dict(three_regions())
    objects["traffic_policies"] = [policy]
    objects.update(changes)  # type: ignore[arg-type]
    return objects


async def _batch(port: int, tmp_path: Path, lines: list[str]) -> list[list[str]]:
    """Many queries from one dig process (``dig -f``): the A data of each answer."""
    batch = tmp_path / "queries.txt"
    batch.write_text("\n".join(lines) + "\n")
    return [a.data("A") for a in await run_dig(port, "-f", str(batch))]


async def test_round_robin_rotates_the_order(serve: Serve, tmp_path: Path) -> None:
    server = await serve(model_of(_with(traffic_policy("shop", ["shop.global.test"]))))
    answers = await _batch(server.port, tmp_path, ["shop.global.test A"] * 6)
    assert all(sorted(a) == [EAST, SOUTH, WEST] for a in answers)
    assert [a[0] for a in answers] == [EAST, SOUTH, WEST, EAST, SOUTH, WEST]


async def test_weighted_shares_follow_weights(serve: Serve, tmp_path: Path) -> None:
    weights = [{"cluster": "east", "weight": 3}, {"cluster": "south", "weight": 1},
               {"cluster": "west", "weight": 1}]
    policy = traffic_policy("shop", ["shop.global.test"], strategy="WeightedRoundRobin",
                            weights=weights)
    server = await serve(model_of(_with(policy)))
    answers = await _batch(server.port, tmp_path, ["shop.global.test A"] * 50)
    assert all(len(a) == 1 for a in answers)
    shares = Counter(a[0] for a in answers)
    assert shares == {EAST: 30, SOUTH: 10, WEST: 10}


async def test_failover_answers_first_healthy_region_in_order(serve: Serve) -> None:
    policy = traffic_policy("shop", ["shop.global.test"], dns={"strategy": "Failover"},
                            failover=["cn-south", "cn-east", "us-west"])
    server = await serve(model_of(_with(policy)))
    assert (await dig(server.port, "shop.global.test", "A")).data() == [SOUTH]
    down = _with(policy)
    down["clusters"][1] = cluster("south", "cn-south", SOUTH, ready=False)
    server.update(model_of(down))
    assert (await dig(server.port, "shop.global.test", "A")).data() == [EAST]


async def test_cluster_not_ready_leaves_at_next_query(serve: Serve) -> None:
    objects = _with(traffic_policy("shop", ["shop.global.test"]))
    server = await serve(model_of(objects))
    assert len((await dig(server.port, "shop.global.test")).data()) == 3
    objects["clusters"][0] = cluster("east", "cn-east", EAST, ready=False)
    server.update(model_of(objects))
    answer = await dig(server.port, "shop.global.test")
    assert sorted(answer.data()) == [SOUTH, WEST]
    for_service = await dig(server.port, "shop.default.svc.clusterset.local")
    assert sorted(for_service.data()) == [SOUTH, WEST]


async def test_geo_uses_client_subnet_then_source_address(serve: Serve) -> None:
    policy = traffic_policy("shop", ["shop.global.test"], strategy="Locality",
                            failover=["cn-east"])
    geo = {"10.1.0.0/16": "cn-east", "10.3.0.0/16": "us-west", "127.0.0.0/8": "cn-south"}
    server = await serve(model_of(_with(policy)), geo_table=geo)
    west = await dig(server.port, "+subnet=10.3.4.0/24", "shop.global.test")
    assert west.data() == [WEST]
    assert west.client_subnet == "10.3.4.0/24/24"  # echoed, scoped to what we were told
    east = await dig(server.port, "+subnet=10.1.9.0/24", "shop.global.test")
    assert east.data() == [EAST]
    unknown = await dig(server.port, "+subnet=192.0.2.0/24", "shop.global.test")
    assert unknown.data() == [EAST]  # no region for it: the failover list decides
    by_source = await dig(server.port, "shop.global.test")  # from 127.0.0.1
    assert sorted(by_source.data()) == [SOUTH]


async def test_ecs_scope_is_zero_when_answer_is_not_tailored(serve: Serve) -> None:
    server = await serve(model_of(_with(traffic_policy("shop", ["shop.global.test"]))))
    answer = await dig(server.port, "+subnet=10.3.4.0/24", "shop.global.test")
    assert answer.client_subnet == "10.3.4.0/24/0"


async def test_srv_carries_endpoint_ports_with_target_addresses(serve: Serve) -> None:
    server = await serve(model_of(three_regions()))
    srv = await dig(server.port, "_http._tcp.shop.default.svc.clusterset.local", "SRV")
    assert srv.status == "NOERROR"
    assert "aa" in srv.flags
    records = sorted(tuple(d.split()) for d in srv.data("SRV"))
    assert [(r[2], r[3]) for r in records] == [
        ("31001", "shop-0.east.shop.default.svc.clusterset.local."),
        ("32001", "shop-0.south.shop.default.svc.clusterset.local."),
        ("32002", "shop-1.south.shop.default.svc.clusterset.local."),
        ("33001", "shop-0.west.shop.default.svc.clusterset.local."),
    ]
    glue = {name: data for name, _, _, data in srv.additional}
    assert glue["shop-1.south.shop.default.svc.clusterset.local."] == "127.0.2.11"

    one_cluster = await dig(server.port, "south.shop.default.svc.clusterset.local")
    assert sorted(one_cluster.data()) == ["127.0.2.10", "127.0.2.11"]
    pod = await dig(server.port, "shop-0.west.shop.default.svc.clusterset.local")
    assert pod.data() == ["127.0.3.10"]
    per_cluster_srv = await dig(
        server.port, "_http._tcp.south.shop.default.svc.clusterset.local", "SRV")
    assert sorted(d.split()[2] for d in per_cluster_srv.data("SRV")) == ["32001", "32002"]
    service = await dig(server.port, "shop.default.svc.clusterset.local")
    assert sorted(service.data()) == [EAST, SOUTH, WEST]


async def test_refused_outside_zones_without_recursion(serve: Serve) -> None:
    server = await serve(model_of(three_regions()))
    answer = await dig(server.port, "example.com", "A")
    assert answer.status == "REFUSED"
    assert "aa" not in answer.flags
    assert "ra" not in answer.flags
    chaos = await dig(server.port, "version.bind", "CH", "TXT")
    assert chaos.status == "REFUSED"


async def test_nxdomain_versus_nodata_carry_soa(serve: Serve) -> None:
    server = await serve(model_of(_with(traffic_policy("shop", ["shop.global.test"]))))
    missing = await dig(server.port, "nothing.global.test", "A")
    assert missing.status == "NXDOMAIN"
    assert "aa" in missing.flags
    assert [(n, t, ttl) for n, ttl, t, _ in missing.authority] == [("global.test.", "SOA", 5)]
    nodata = await dig(server.port, "shop.global.test", "MX")
    assert nodata.status == "NOERROR"
    assert nodata.answer == []
    assert nodata.authority[0][2] == "SOA"
    ent = await dig(server.port, "default.svc.clusterset.local", "A")  # has children
    assert ent.status == "NOERROR"
    assert ent.answer == []
    assert ent.authority[0][0] == "clusterset.local."
    not_exported = await dig(server.port, "cart.default.svc.clusterset.local")
    assert not_exported.status == "NXDOMAIN"


async def test_soa_and_ns_at_each_apex(serve: Serve) -> None:
    server = await serve(model_of(three_regions()))
    for apex in ("global.test.", "clusterset.local."):
        soa = await dig(server.port, apex, "SOA")
        assert soa.status == "NOERROR"
        assert soa.answer[0][2] == "SOA"
        mname, _rname, *_nums, minimum = soa.answer[0][3].split()
        assert (mname, minimum) == ("ns.global.test.", "5")
        ns = await dig(server.port, apex, "NS")
        assert ns.data("NS") == ["ns.global.test."]
        assert ns.additional == [("ns.global.test.", 5, "A", "127.0.0.1")]


async def test_names_are_case_insensitive_and_case_is_echoed(serve: Serve) -> None:
    server = await serve(model_of(_with(traffic_policy("shop", ["Shop.Global.Test"]))))
    answer = await dig(server.port, "sHoP.GLOBAL.test", "A")
    assert len(answer.data()) == 3


async def test_aaaa_answers_ipv6_ingress_only(serve: Serve) -> None:
    objects = _with(traffic_policy("shop", ["shop.global.test"]))
    objects["clusters"][2] = cluster("west", "us-west", "fd00::3")
    server = await serve(model_of(objects))
    assert (await dig(server.port, "shop.global.test", "AAAA")).data("AAAA") == ["fd00::3"]
    assert sorted((await dig(server.port, "shop.global.test", "A")).data()) == [EAST, SOUTH]


async def test_large_answer_truncated_over_udp_then_full_over_tcp(serve: Serve) -> None:
    clusters = [cluster(f"c{i}", "r", f"127.0.{10 + i // 200}.{1 + i % 200}") for i in range(100)]
    slices = [endpoint_slice("shop", f"c{i}", [("127.0.0.1", 80)]) for i in range(100)]
    objects = {"clusters": clusters, "endpoint_slices": slices,
               "traffic_policies": [traffic_policy("shop", ["shop.global.test"])]}
    server = await serve(model_of(objects))
    answer = await dig(server.port, "shop.global.test", "A")  # dig's EDNS buffer: 1232
    assert answer.retried_tcp
    assert len(answer.data()) == 100
    udp_only = await dig(server.port, "+ignore", "+noedns", "shop.global.test", "A")
    assert "tc" in udp_only.flags
    assert len(udp_only.data()) < 100


async def test_wildcard_host_synthesises_names_that_do_not_exist(serve: Serve) -> None:
    objects = _with(traffic_policy("shop", ["*.apps.global.test"]))
    objects["traffic_policies"].append(
        traffic_policy("one", ["one.apps.global.test"], service="shop",
                       dns={"strategy": "Failover"}, failover=["us-west"]))
    server = await serve(model_of(objects))
    synthesised = await dig(server.port, "x.apps.global.test")
    assert sorted(synthesised.data()) == [EAST, SOUTH, WEST]
    assert synthesised.answer[0][0] == "x.apps.global.test."
    assert len((await dig(server.port, "a.b.apps.global.test")).data()) == 3
    assert (await dig(server.port, "one.apps.global.test")).data() == [WEST]  # exact wins
    parent = await dig(server.port, "apps.global.test")
    assert parent.status == "NOERROR"
    assert parent.answer == []
    counted = server.metrics.registry.get_sample_value(
        "flotilla_dns_queries_total",
        {"name": "*.apps.global.test.", "type": "A", "rcode": "NOERROR"})
    assert counted == 2  # synthesised names count under their wildcard, not themselves


async def test_global_name_at_the_apex_and_on_the_ns_name(serve: Serve) -> None:
    objects = _with(traffic_policy("shop", ["global.test", "ns.global.test"]))
    server = await serve(model_of(objects))
    apex = await dig(server.port, "global.test", "A")
    assert sorted(apex.data()) == [EAST, SOUTH, WEST]
    assert (await dig(server.port, "global.test", "SOA")).answer[0][2] == "SOA"
    ns = await dig(server.port, "ns.global.test", "A")  # the policy wins over the glue
    assert sorted(ns.data()) == [EAST, SOUTH, WEST]
