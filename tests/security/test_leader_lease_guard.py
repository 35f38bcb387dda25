"""The controller leader Lease cannot be taken by an agent: a cluster named like it
(``flotilla-controllers``) would otherwise let its agent hold the leadership (and stop
every controller), since an agent may hold the Lease named after its cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.serverproc import ServerProcess
from tests.helpers import wait_for_sync
from tests.security.common import CLUSTERS, LEASES, call, cluster, create_token

LEADER = "flotilla-controllers"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", "--name", "cp-1")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_an_agent_cannot_write_the_leader_lease(server: ServerProcess) -> None:
    admin = server.token
    assert call(server, admin, "POST", CLUSTERS,
                cluster(LEADER, ["127.0.0.1/32"])).status_code == 201
    held = wait_for_sync(lambda: _held(server), timeout=20, what="the leader Lease")
    assert held["spec"]["holderIdentity"] == "cp-1"
    token = create_token(server.data_dir, "agent-x", "--cluster", LEADER)
    taken = {**held, "spec": {**held["spec"], "holderIdentity": "agent-x"}}
    # the server re-reads its token file every few seconds: wait until it knows this one
    refused = wait_for_sync(
        lambda: (r := call(server, token, "PUT", f"{LEASES}/{LEADER}", taken)).status_code
        != 401 and r, timeout=20, what="the new agent token to be known")
    assert refused.status_code == 403, refused.text
    assert "controller leader" in refused.json()["message"]
    assert _held(server)["spec"]["holderIdentity"] == "cp-1"


def _held(server: ServerProcess) -> dict:  # type: ignore[type-arg]
    r = call(server, server.token, "GET", f"{LEASES}/{LEADER}")
    return r.json() if r.status_code == 200 and r.json()["spec"].get("holderIdentity") \
        else {}
