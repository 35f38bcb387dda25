"""`flotilla up` hands each part its own credential through a file: none is on any
process's command line, every file holding a secret is 0600 in a 0700 data directory,
and each part's writes carry its own name."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.api.auth import load_tokens
from flotilla.pki.layout import PkiLayout
from tests.helpers import free_port, wait_for_sync
from tests.up.harness import UpProcess, proc_table

CLUSTERS = [{"name": "east-1", "region": "r1", "zone": "r1-a", "address": "127.0.71.1",
             "nodes": 1},
            {"name": "west-1", "region": "r2", "zone": "r2-a", "address": "127.0.72.1",
             "nodes": 1}]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpProcess]:
    proc = UpProcess(tmp_path, CLUSTERS, gateway=f"127.0.0.1:{free_port()}",
                     dns=f"127.0.0.1:{free_port()}")
    try:
        yield proc
    finally:
        proc.stop()


def _secrets(up: UpProcess) -> dict[str, str]:
    layout = PkiLayout(up.data_dir)
    out = {"admin": str(up.state()["token"])}
    for path in layout.credentials_dir.iterdir():
        out[path.stem] = path.read_text().strip()
    return out


def test_no_credential_in_argv_and_secret_files_private(up: UpProcess) -> None:
    api = up.wait_up()
    secrets = _secrets(up)
    assert set(secrets) == {"admin", "agent-east-1", "agent-west-1", "gateway", "dns"}
    assert len(set(secrets.values())) == len(secrets), "one distinct token per part"
    records = {r.name: r for r in load_tokens(up.data_dir)}
    assert (records["agent-east-1"].role, records["agent-east-1"].cluster) == ("agent", "east-1")
    assert records["gateway"].role == "gateway"
    assert records["dns"].role == "dns"

    # No process of this `up` (all its groups, the pods included) shows a credential.
    groups = up.pgids()
    ours = [(pid, cmd) for pid, pgid, state, cmd in proc_table()
            if state != "Z" and pgid in groups]
    assert len(ours) >= 6, ours  # up, server, two agents, gateway, dns
    for pid, cmd in ours:
        for name, secret in secrets.items():
            assert secret not in cmd, f"pid {pid} has the {name} token in its argv: {cmd}"
    # Nor does up.json's record of what it started.
    recorded = up.state()
    argvs = [" ".join(c["argv"]) for c in recorded["clusters"]]
    argvs += [" ".join(recorded[k]["argv"]) for k in ("gateway", "dns")]
    for argv in argvs:
        assert "--token-file" in argv
        assert not any(s in argv for s in secrets.values()), argv

    # The data directory and everything with a secret in it is this user's only.
    assert stat.S_IMODE(up.data_dir.stat().st_mode) == 0o700
    private = [up.data_dir / "up.json", up.data_dir / "tokens.json",
               up.data_dir / "audit.log", *PkiLayout(up.data_dir).credentials_dir.iterdir(),
               *up.data_dir.glob("*.db*"), *up.data_dir.glob("*.sqlite*"),
               *(up.data_dir / "logs").iterdir()]
    holding = [p for p in up.data_dir.rglob("*")
               if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets.values())]
    assert holding, "the credential files hold the tokens"
    for path in {*private, *holding}:
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} is {mode:04o}"
    assert stat.S_IMODE(PkiLayout(up.data_dir).credentials_dir.stat().st_mode) == 0o700

    # Each part writes under its own name.
    cluster = api.cluster("east-1") or {}
    assert cluster["metadata"]["annotations"]["flotilla.io/changed-by"] == "agent-east-1"
    assert cluster["spec"]["addressRange"] == ["127.0.0.1/32", "127.0.71.1/32"]

    # The CLI reads the audit log of this up's data directory.
    entries = wait_for_sync(lambda: [e for e in _audit(up) if e["user"] == "agent-west-1"],
                            timeout=10, what="agent-west-1's writes in the audit log")
    assert {e["code"] for e in entries} <= {200, 201, 409}


def _audit(up: UpProcess) -> list[dict[str, object]]:
    import json

    out = up.cli("audit", "-o", "json")
    return list(json.loads(out.stdout))
