"""``flotilla token`` and ``flotilla audit`` through the real console script, against a
real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.serverproc import ServerProcess, api_only_args, clean_env, flotilla
from tests.helpers import wait_for_sync
from tests.security.common import DEPLOYMENTS, audit_json, call, create_token, deployment


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", *api_only_args())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _token(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    r = flotilla("token", *args, "--data-dir", str(server.data_dir), env=clean_env())
    return r.returncode, r.stdout, r.stderr


def test_create_list_revoke(server: ServerProcess) -> None:
    view = create_token(server.data_dir, "ci", "--role", "view", "--ttl", "1h")
    agent = create_token(server.data_dir, "agent-x", "--cluster", "x")
    wait_for_sync(lambda: call(server, view, "GET", DEPLOYMENTS).status_code == 200,
                  timeout=10, what="the new view token")
    assert call(server, view, "POST", DEPLOYMENTS, deployment("d")).status_code == 403

    code, out, _ = _token(server, "list", "-o", "json")
    assert code == 0
    listed = {t["name"]: t for t in json.loads(out)}
    assert listed["ci"]["role"] == "view"
    assert listed["ci"]["expires"] != "never"
    assert (listed["agent-x"]["role"], listed["agent-x"]["cluster"]) == ("agent", "x")
    code, table, _ = _token(server, "list")
    assert code == 0
    assert "agent-x" in table
    for secret in (view, agent, server.token):
        assert secret not in out
        assert secret not in table
        assert secret not in (server.data_dir / "tokens.json").read_text()

    code, _, err = _token(server, "revoke", "ci")
    assert code == 0, err
    wait_for_sync(lambda: call(server, view, "GET", DEPLOYMENTS).status_code == 401,
                  timeout=10, what="the revoked token refused")
    code, _, err = _token(server, "revoke", "ci")
    assert code == 1
    assert "no token named 'ci'" in err


@pytest.mark.parametrize(("args", "message"), [
    (("create", "a", "--cluster", "c", "--role", "view"), "--cluster makes an agent"),
    (("create", "a"), "give --role"),
    (("create", "a", "--role", "agent"), "needs --cluster"),
    (("create", "a", "--role", "view", "--ttl", "soon"), "--ttl"),
    (("create", "A B", "--role", "view"), "token name"),
])
def test_bad_input_is_named(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    r = flotilla("token", *args, "--data-dir", str(tmp_path / "data"), env=clean_env())
    code, out, err = r.returncode, r.stdout, r.stderr
    assert code == 2
    assert message in err
    assert out == ""


def test_token_file_must_be_private(tmp_path: Path) -> None:
    loose = tmp_path / "t.token"
    loose.write_text("secret\n")
    loose.chmod(0o644)
    r = flotilla("gateway", "--server", "http://127.0.0.1:9", "--token-file", str(loose),
                 env=clean_env())
    assert r.returncode == 2
    assert "chmod 600" in r.stderr


def test_audit_reads_writes_and_refusals(server: ServerProcess) -> None:
    view = create_token(server.data_dir, "viewer", "--role", "view")
    assert call(server, server.token, "POST", DEPLOYMENTS, deployment("web")).status_code == 201
    wait_for_sync(lambda: call(server, view, "PUT", f"{DEPLOYMENTS}/web",
                               deployment("web", 2)).status_code == 403, timeout=10,
                  what="the viewer refused")
    assert call(server, None, "DELETE", f"{DEPLOYMENTS}/web").status_code == 401
    assert call(server, view, "GET", DEPLOYMENTS).status_code == 200  # a read: not recorded

    entries = audit_json(server.data_dir, "--since", "5m")
    rows = [(e["user"], e["verb"], e["resource"], e["name"], e["code"]) for e in entries]
    assert ("admin", "create", "deployments", "web", 201) in rows
    assert ("viewer", "update", "deployments", "web", 403) in rows
    assert ("system:anonymous", "delete", "deployments", "web", 401) in rows
    assert not any(r[0] == "viewer" and r[1] == "list" for r in rows)
    for e in entries:
        assert {"time", "user", "verb", "resource", "namespace", "name", "code",
                "source"} <= set(e)
    only = audit_json(server.data_dir, "--user", "viewer")
    assert only
    assert {e["user"] for e in only} == {"viewer"}
    assert (server.data_dir / "audit.log").stat().st_mode & 0o777 == 0o600

    table = flotilla("audit", "--data-dir", str(server.data_dir), env=clean_env())
    assert table.returncode == 0
    assert "viewer" in table.stdout
    bad = flotilla("audit", "--data-dir", str(server.data_dir), "--since", "x",
                   env=clean_env())
    assert bad.returncode == 2
    assert "--since" in bad.stderr
