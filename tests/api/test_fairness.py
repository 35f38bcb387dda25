"""Fair sharing against a real server: rate limits per identity and priority level,
the watch cap, the server's watch timeout with lossless resume, and watches that end
when their token is revoked or expires."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from flotilla.agent.heartbeat import Heartbeat
from flotilla.api.auth import AGENT, add_token, revoke_token
from flotilla.client.base import ApiError, Object, WatchEvent
from flotilla.client.http import HttpClient
from flotilla.client.informer import Informer
from flotilla.client.rewatch import follow
from flotilla.resources.kinds import Kind, by_kind
from tests.api.conftest import ServerProcess, start_server
from tests.helpers import wait_for

CM = by_kind("ConfigMap")
CLUSTERS = "/apis/cluster.flotilla.io/v1alpha1/clusters"


def configmap(name: str, namespace: str = "default") -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": {"k": name}}


@contextlib.contextmanager
def server_with(tmp: Path, *args: str) -> Iterator[ServerProcess]:
    srv = start_server(tmp, *args)
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill()


def http_for(srv: ServerProcess, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=srv.url, verify=srv.verify, timeout=10,
                             headers={"Authorization": f"Bearer {token}"})


async def test_burst_then_429_with_status_and_retry_after(tmp_path: Path) -> None:
    with server_with(tmp_path, "--user-rate", "0.5", "--user-burst", "5") as srv:
        alice = add_token(srv.data_dir, "alice", "view")
        async with http_for(srv, alice) as http, http_for(srv, srv.token) as admin:
            await wait_for(lambda: _answers(http), what="alice's token to be accepted")
            started, ok, refused = time.monotonic(), 0, None
            for _ in range(40):
                r = await http.get("/api/v1/configmaps")
                if r.status_code == 429:
                    refused = r
                    break
                assert r.status_code == 200, r.text
                ok += 1
            elapsed = time.monotonic() - started
            assert refused is not None, "40 requests at once never hit a 0.5/s limit"
            # The burst, plus what the bucket refilled while we sent (generous bound).
            assert 4 <= ok <= 5 + int(elapsed * 0.5) + 1
            status = refused.json()
            assert status["kind"] == "Status"
            assert status["code"] == 429
            assert status["reason"] == "TooManyRequests"
            assert "'alice'" in status["message"]
            assert "0.5 requests/s" in status["message"]
            retry = int(refused.headers["Retry-After"])
            assert retry >= 1
            assert status["details"]["retryAfterSeconds"] == retry
            # The admin (the exempt level) is not touched by alice's limit, nor limited.
            for _ in range(30):
                assert (await admin.get("/api/v1/configmaps")).status_code == 200
            # Waiting what Retry-After says is enough to be served again.
            await asyncio.sleep(retry)
            assert (await http.get("/api/v1/configmaps")).status_code == 200


async def _answers(http: httpx.AsyncClient) -> bool:
    return (await http.get("/healthz")).status_code == 200 and \
        (await http.get("/api/v1/namespaces/default/configmaps/none")).status_code == 404


async def test_noisy_users_do_not_get_agent_heartbeats_refused(tmp_path: Path) -> None:
    """Two users flood far above their limits (and the users' shared one) while an agent
    heartbeats: the users get 429s, every heartbeat is answered."""
    with server_with(tmp_path, "--user-rate", "2", "--user-burst", "4",
                     "--users-total-rate", "3") as srv:
        users = [add_token(srv.data_dir, name, "view") for name in ("alice", "bob")]
        agent_token = add_token(srv.data_dir, "agent-c1", AGENT, cluster="c1")
        async with http_for(srv, srv.token) as admin:
            r = await admin.post(CLUSTERS, json={
                "apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
                "metadata": {"name": "c1"}, "spec": {"region": "r", "zone": "z"}})
            assert r.status_code == 201, r.text
        refused: dict[str, int] = {"alice": 0, "bob": 0}
        stop = asyncio.Event()

        async def flood(name: str, token: str) -> None:
            async with http_for(srv, token) as http:
                for _ in range(2000):  # bounded in count and in time (stop)
                    if stop.is_set():
                        return
                    code = (await http.get(CLUSTERS)).status_code
                    if code == 429:
                        refused[name] += 1
                    elif code == 401:
                        await asyncio.sleep(0.05)  # the token file not re-read yet
                    else:
                        assert code == 200

        async with HttpClient(srv.url, agent_token, ca=srv.ca, rate_limit_retries=0) as c:
            beat = Heartbeat(c, "c1", 0.2)
            await wait_for(lambda: _renewed(beat), what="the agent's first renewal")
            floods = [asyncio.create_task(flood(n, t))
                      for n, t in zip(refused, users, strict=True)]
            try:
                await wait_for(lambda: _both_refused(refused), timeout=30,
                               what="both users to be over their limits")
                renewals = beat.renewals
                deadline = time.monotonic() + 30
                while beat.renewals < renewals + 25 and time.monotonic() < deadline:
                    await beat.renew_once()  # raises on any refusal (no retries)
                    await asyncio.sleep(0.05)
                assert beat.renewals >= renewals + 25
            finally:
                stop.set()
                await asyncio.gather(*floods)
        assert refused["alice"] > 0
        assert refused["bob"] > 0


async def _renewed(beat: Heartbeat) -> bool:
    try:
        await beat.renew_once()
    except ApiError as exc:
        if exc.status != 401:  # 401 only while the server has not re-read the tokens
            raise
        return False
    return True


async def _both_refused(refused: dict[str, int]) -> bool:
    return all(refused.values())


async def test_typed_client_waits_out_a_429(tmp_path: Path) -> None:
    with server_with(tmp_path, "--user-rate", "2", "--user-burst", "2") as srv:
        token = add_token(srv.data_dir, "ci", "view")
        async with http_for(srv, token) as http:
            await wait_for(lambda: _answers(http), what="the token to be accepted")
        async with HttpClient(srv.url, token, ca=srv.ca) as patient, \
                HttpClient(srv.url, token, ca=srv.ca, rate_limit_retries=0) as hasty:
            for _ in range(6):  # three times the burst: some are refused, then retried
                await patient.list(CM, "default")

            async def twenty() -> None:
                for _ in range(20):
                    await hasty.list(CM, "default")
            with pytest.raises(ApiError) as refused:
                await twenty()
            assert refused.value.status == 429
            assert refused.value.reason == "TooManyRequests"


async def test_open_watches_are_capped_per_identity(tmp_path: Path) -> None:
    with server_with(tmp_path, "--max-watches-per-identity", "2") as srv:
        carol = add_token(srv.data_dir, "carol", "view")
        dave = add_token(srv.data_dir, "dave", "view")
        params = {"watch": "1"}
        async with http_for(srv, carol) as http, http_for(srv, dave) as other, \
                contextlib.AsyncExitStack() as stack:
            await wait_for(lambda: _answers(http), what="carol's token to be accepted")
            for _ in range(2):
                r = await stack.enter_async_context(
                    http.stream("GET", "/api/v1/configmaps", params=params))
                assert r.status_code == 200
            third = await http.get("/api/v1/configmaps", params=params)
            assert third.status_code == 429
            assert "Retry-After" in third.headers
            message = third.json()["message"]
            assert "'carol'" in message
            assert "limit is 2" in message
            assert "--max-watches-per-identity" in message
            # Another identity has its own slots.
            async with other.stream("GET", "/api/v1/configmaps", params=params) as r:
                assert r.status_code == 200
            # Hanging up one watch gives its slot back.
            await stack.aclose()

            async def slot_free() -> bool:
                async with http.stream("GET", "/api/v1/configmaps", params=params) as r:
                    return r.status_code == 200
            await wait_for(slot_free, what="a closed watch's slot to be given back")


class GapWriter(HttpClient):
    """An `HttpClient` that writes a ConfigMap after each watch stream ends cleanly and
    before the caller can watch again: a change made exactly in the gap."""

    gap_writes: list[str]
    ends: list[float]

    async def watch(self, kind: Kind, namespace: str | None = None, *,
                    resource_version: str, selector: str | None = None,
                    ) -> AsyncIterator[WatchEvent]:
        opened = time.monotonic()
        async for event in super().watch(kind, namespace, resource_version=resource_version,
                                         selector=selector):
            yield event
        self.ends.append(time.monotonic() - opened)
        name = f"gap-{len(self.gap_writes)}"
        await self.create(configmap(name))
        self.gap_writes.append(name)


async def test_watch_ends_at_its_timeout_and_the_informer_resumes_losing_nothing(
        tmp_path: Path) -> None:
    with server_with(tmp_path, "--min-watch-timeout", "1", "--bookmark-interval", "0.3") as srv:
        async with GapWriter(srv.url, srv.token, ca=srv.ca) as client:
            client.gap_writes, client.ends = [], []
            await client.create(configmap("before"))
            informer = Informer(client, CM, namespace="default")
            running = asyncio.create_task(informer.run())
            try:
                async def resumed(n: int) -> bool:
                    return len(client.gap_writes) >= n
                await wait_for(lambda: resumed(3), timeout=30,
                               what="three server-ended watches")
                # Writes while a stream is open, too.
                for i in range(5):
                    await client.create(configmap(f"during-{i}"))

                async def holds_everything() -> bool:
                    names = {o["metadata"]["name"] for o in informer.cache.list()}
                    return {"before", *client.gap_writes[:3],
                            *(f"during-{i}" for i in range(5))} <= names
                await wait_for(holds_everything, timeout=30,
                               what="every object written before, during and between "
                                    "streams")
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            assert informer.lists == 1, "a server-ended watch must not force a re-list"
            assert informer.failures == 0
            # Each stream lasted about [1, 2) s: the server's randomised timeout.
            assert all(0.8 <= t < 15 for t in client.ends), client.ends


async def test_follow_reads_every_change_once_across_server_ended_streams(
        tmp_path: Path) -> None:
    with server_with(tmp_path, "--min-watch-timeout", "1") as srv:
        async with GapWriter(srv.url, srv.token, ca=srv.ca) as client:
            client.gap_writes, client.ends = [], []
            rv = (await client.list(CM, "default")).resource_version
            seen: list[str] = []

            async def read() -> None:
                async for event in follow(client, CM, "default", resource_version=rv):
                    if event.type == "ADDED":
                        seen.append(event.object["metadata"]["name"])
                    if len(client.gap_writes) >= 3 and \
                            set(client.gap_writes[:3]) <= set(seen):
                        return
            await asyncio.wait_for(read(), 30)
            assert len(seen) == len(set(seen)), f"an event was delivered twice: {seen}"
            assert seen[:3] == ["gap-0", "gap-1", "gap-2"]


async def _open_watch(srv: ServerProcess, client: HttpClient) -> AsyncIterator[WatchEvent]:
    """A watch of ``client`` that has delivered one event: it is open on the server."""
    async with HttpClient(srv.url, srv.token, ca=srv.ca) as admin:
        await admin.create(configmap("x"))
    stream = client.watch(CM, "default", resource_version="0")  # replays x's creation
    assert (await asyncio.wait_for(anext(stream), 10)).type == "ADDED"
    return stream


async def _end_of(stream: AsyncIterator[WatchEvent], timeout: float) -> ApiError:
    async def drain() -> None:
        async for _ in stream:
            pass
    with pytest.raises(ApiError) as ended:
        await asyncio.wait_for(drain(), timeout)
    return ended.value


async def _lists(client: HttpClient) -> bool:
    try:
        await client.list(CM, "default")
    except ApiError as exc:
        if exc.status != 401:
            raise
        return False
    return True


async def test_revoking_a_token_ends_its_open_watch(tmp_path: Path) -> None:
    with server_with(tmp_path) as srv:
        token = add_token(srv.data_dir, "erin", "view")
        async with HttpClient(srv.url, token, ca=srv.ca) as client:
            await wait_for(lambda: _lists(client), what="erin's token to be accepted")
            stream = await _open_watch(srv, client)
            revoked = time.monotonic()
            assert revoke_token(srv.data_dir, "erin")
            ended = await _end_of(stream, 20)
            took = time.monotonic() - revoked
            assert ended.status == 401
            assert "watch ended" in ended.message
            assert took < 20  # token file recheck (1 s) + watch recheck (1 s), generous


async def test_a_watch_ends_when_its_token_expires(tmp_path: Path) -> None:
    with server_with(tmp_path) as srv:
        token = add_token(srv.data_dir, "short", "view", ttl=5)
        async with HttpClient(srv.url, token, ca=srv.ca) as client:
            await wait_for(lambda: _lists(client), what="the token to be accepted")
            stream = await _open_watch(srv, client)
            ended = await _end_of(stream, 30)
            assert ended.status == 401
            assert "expired" in ended.message
            assert "watch ended" in ended.message
