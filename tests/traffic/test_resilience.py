"""Failure handling against real backend processes: outlier ejection and return, active
health checks, retries, a backend killed under load, slow backends avoided, and a model
swap under load."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import httpx

from flotilla.traffic.gateway import Gateway
from flotilla.traffic.model import (
    HealthCheck,
    OutlierDetection,
    Policy,
    Retries,
    Strategy,
    static_model,
)
from flotilla.traffic.proxy import HOLD_LIMIT
from tests.helpers import wait_for

from .conftest import HOST, StartBackend, model_for, url


async def load(gw: Gateway, total: int, workers: int, path: str = "/",
               midway: Callable[[], object] | None = None, at: int = 0,
               ) -> tuple[Counter[str], list[str]]:
    """``total`` GETs over ``workers`` keep-alive clients; calls ``midway`` once after
    ``at`` responses. Returns the backends that served, and every failure."""
    served: Counter[str] = Counter()
    failures: list[str] = []
    done = 0
    todo = iter(range(total))

    async def worker() -> None:
        nonlocal done
        async with httpx.AsyncClient(headers={"host": HOST}, timeout=10) as c:
            for _ in todo:
                try:
                    r = await c.get(url(gw, path))
                    if r.status_code == 200:
                        served[r.headers["x-backend"]] += 1
                    else:
                        failures.append(f"{r.status_code} {r.text.strip()}")
                except httpx.HTTPError as e:
                    failures.append(repr(e))
                done += 1
                if midway is not None and done == at:
                    midway()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), 30)
    return served, failures


async def test_failing_endpoint_is_ejected_then_returns(start_backend: StartBackend,
                                                       gateway) -> None:
    good, bad = await start_backend("good"), await start_backend("bad")
    policy = Policy("shop", "default", "shop", (HOST,), outlier=OutlierDetection(
        consecutive_errors=3, base_ejection_time=3.0, max_ejection_percent=50,
        panic_threshold=0.0))
    gw = await gateway(model_for([good, bad], policy))
    bad_up = next(u for u in gw.state.runtimes["default/shop"].upstreams
                  if u.endpoint.port == bad.port)
    await bad.control(fail=500)
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        statuses = [(await c.get(url(gw))).status_code for _ in range(12)]
        # round robin: the bad endpoint answers every other request until its third
        # consecutive 500 ejects it; after that only the good one serves
        assert statuses.count(500) == 3
        assert statuses[6:] == [200] * 6
        assert not bad_up.available
        await bad.control(reset=1)
        await wait_for(lambda: asyncio.sleep(0, bad_up.available), timeout=10,
                       what="the ejection to expire")
        seen = {(await c.get(url(gw))).headers["x-backend"] for _ in range(4)}
        assert seen == {"good", "bad"}
        metrics = (await c.get(f"http://127.0.0.1:{gw.admin_port}/metrics")).text
    assert 'flotilla_gateway_ejections_total{cluster="bad"' in metrics


async def test_repeat_ejection_lasts_longer(start_backend: StartBackend, gateway) -> None:
    a, b = await start_backend("a"), await start_backend("b")
    policy = Policy("shop", "default", "shop", (HOST,), outlier=OutlierDetection(
        consecutive_errors=1, base_ejection_time=10.0, max_ejection_percent=50))
    gw = await gateway(model_for([a, b], policy))
    rt = gw.state.runtimes["default/shop"]
    u = rt.upstreams[0]
    assert rt.eject(u)
    assert 5.0 < u.ejected_until - time.monotonic() <= 10.0
    u.ejected_until = time.monotonic() - 0.01  # as if the first ejection had just expired
    rt.recompute()
    assert rt.eject(u)
    assert 15.0 < u.ejected_until - time.monotonic() <= 20.0  # 2 x base the second time
    assert not rt.eject(rt.upstreams[1])  # max 50% of 2 endpoints ejected at once


async def test_active_health_checks_take_endpoint_out_and_back(
        start_backend: StartBackend, gateway) -> None:
    good, sick = await start_backend("good"), await start_backend("sick")
    policy = Policy("shop", "default", "shop", (HOST,), health_check=HealthCheck(
        "/healthz", interval=0.1, timeout=0.5, healthy_threshold=2, unhealthy_threshold=2))
    gw = await gateway(model_for([good, sick], policy))
    sick_up = next(u for u in gw.state.runtimes["default/shop"].upstreams
                   if u.endpoint.port == sick.port)
    await sick.control(fail=503)
    await wait_for(lambda: asyncio.sleep(0, not sick_up.healthy), timeout=5,
                   what="the health check to fail")
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        assert {(await c.get(url(gw))).headers["x-backend"] for _ in range(6)} == {"good"}
        await sick.control(reset=1)
        await wait_for(lambda: asyncio.sleep(0, sick_up.healthy), timeout=5,
                       what="the health check to pass again")
        assert {(await c.get(url(gw))).headers["x-backend"] for _ in range(6)} == \
            {"good", "sick"}
        metrics = (await c.get(f"http://127.0.0.1:{gw.admin_port}/metrics")).text
    assert 'result="failure"' in metrics
    assert 'result="success"' in metrics


async def test_all_unavailable_answers_503_saying_why(start_backend: StartBackend,
                                                      gateway) -> None:
    b = await start_backend("only")
    policy = Policy("shop", "default", "shop", (HOST,),
                    health_check=HealthCheck("/healthz", 0.1, 0.5, 1, 1),
                    outlier=OutlierDetection(panic_threshold=0.0))
    gw = await gateway(model_for([b], policy))
    await b.control(fail=503)
    u = gw.state.runtimes["default/shop"].upstreams[0]
    await wait_for(lambda: asyncio.sleep(0, not u.healthy), timeout=5, what="unhealthy")
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        r = await c.get(url(gw))
    assert r.status_code == 503
    assert "unavailable" in r.text


async def test_503_is_retried_on_another_cluster(start_backend: StartBackend,
                                                 gateway) -> None:
    good, bad = await start_backend("good"), await start_backend("bad")
    await bad.control(fail=503)
    policy = Policy("shop", "default", "shop", (HOST,),
                    retries=Retries(attempts=2, retry_on=frozenset({"503"})),
                    outlier=OutlierDetection(consecutive_errors=1000))
    gw = await gateway(model_for([good, bad], policy))
    # 3 concurrent clients: within the retry budget's minimum of 3 concurrent retries
    served, failures = await load(gw, total=40, workers=3)
    assert failures == []
    assert served == {"good": 40}
    async with httpx.AsyncClient() as c:
        metrics = (await c.get(f"http://127.0.0.1:{gw.admin_port}/metrics")).text
    assert 'flotilla_gateway_retries_total{service="default/shop"}' in metrics


async def test_endpoint_killed_mid_load_fails_no_get(start_backend: StartBackend,
                                                     gateway) -> None:
    bs = [await start_backend(n) for n in ("east", "south", "west")]
    gw = await gateway(model_for(bs))
    served, failures = await load(gw, total=300, workers=8, midway=bs[0].kill, at=60)
    assert failures == []
    assert sum(served.values()) == 300
    assert served["south"] > 60
    assert served["west"] > 60


async def test_endpoint_dying_between_head_and_body_is_retried(
        start_backend: StartBackend, gateway) -> None:
    """The head is in, the body never comes: the gateway held the small response back,
    so the client gets the other endpoint's answer instead of a cut one."""
    dying, other = await start_backend("dying"), await start_backend("other")
    await dying.control(die=1)
    gw = await gateway(model_for([dying, other]))
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        rs = [await c.get(url(gw)) for _ in range(4)]
    assert [r.status_code for r in rs] == [200] * 4
    assert {r.headers["x-backend"] for r in rs} == {"other"}
    assert await asyncio.wait_for(dying.proc.wait(), 10) != 0  # it did die mid-response


async def test_large_response_cut_mid_body_reaches_the_client_cut(
        start_backend: StartBackend, gateway) -> None:
    """Beyond the hold limit a response streams, so a death mid-body cannot be hidden:
    the client sees a broken response (never a short one passed off as whole), and the
    next request is served."""
    dying, other = await start_backend("dying"), await start_backend("other")
    await dying.control(die=1)
    gw = await gateway(model_for([dying, other]))
    size = HOLD_LIMIT + 1
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        outcomes = []
        for _ in range(2):
            try:
                r = await c.get(url(gw, f"/?size={size}"))
                outcomes.append((r.headers["x-backend"], len(r.content)))
            except httpx.RemoteProtocolError:
                outcomes.append(("cut", 0))
    assert sorted(outcomes) == [("cut", 0), ("other", size)]


async def test_slow_endpoint_avoided_by_least_request(start_backend: StartBackend,
                                                      gateway) -> None:
    fast, slow = await start_backend("fast"), await start_backend("slow")
    await slow.control(slow=1.0)
    gw = await gateway(model_for([fast, slow], Policy(
        "shop", "default", "shop", (HOST,), strategy=Strategy("LeastRequest"))))
    # 4 clients: the slow endpoint holds at most 2 of them at a time (it is picked only
    # while it has fewer in flight), each for a second; the fast one serves the rest.
    # Round robin would send it half of the 120.
    served, failures = await load(gw, total=120, workers=4)
    assert failures == []
    assert served["slow"] <= 15, served


async def test_slow_endpoint_avoided_by_latency(start_backend: StartBackend,
                                                gateway) -> None:
    fast, slow = await start_backend("fast"), await start_backend("slow")
    await slow.control(slow=0.2)
    gw = await gateway(model_for([fast, slow], Policy(
        "shop", "default", "shop", (HOST,), strategy=Strategy("Latency"))))
    served, failures = await load(gw, total=60, workers=1)
    assert failures == []
    # round robin would send it 30; a scheduling hiccup on the fast one may cost a probe
    assert served["slow"] <= 6, served


async def test_model_swap_under_load_fails_nothing(start_backend: StartBackend,
                                                   gateway) -> None:
    a, b, c = [await start_backend(n) for n in ("a", "b", "c")]
    gw = await gateway(model_for([a, b]))
    swaps = iter([model_for([b, c]), model_for([c])])

    def swap() -> None:
        gw.update(next(swaps))

    # requests take 20 ms, so some are in flight on the old model at each swap
    served, failures = await load(gw, total=120, workers=8, path="/?sleep=0.02",
                                  midway=swap, at=40)
    assert failures == []
    gw.update(next(swaps))
    after, failures = await load(gw, total=20, workers=4)
    assert failures == []
    assert after == {"c": 20}
    assert served["a"] > 0


async def test_static_model_rejects_nothing_it_should_route(start_backend: StartBackend,
                                                            gateway) -> None:
    """Path prefixes: the longest prefix wins, other paths fall back to '/'."""
    api, web = await start_backend("api"), await start_backend("web")
    model = static_model([
        (Policy("web", "default", "web", (HOST,)), [web.endpoint]),
        (Policy("api", "default", "api", (HOST,), paths=("/api",)), [api.endpoint]),
    ])
    gw = await gateway(model)
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        assert (await c.get(url(gw, "/api/v1"))).headers["x-backend"] == "api"
        assert (await c.get(url(gw, "/index"))).headers["x-backend"] == "web"
