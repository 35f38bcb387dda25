"""A `flotilla up` stopped with SIGTERM leaves a folder whose commands say so.

One real `up` (one small cluster, no gateway or DNS) in a temporary folder. Loopback
address 127.0.201.1 is this file's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.up.harness import UpProcess, proc_table, wait_gone

pytestmark = pytest.mark.slow
CLUSTERS = [{"name": "s-east", "region": "r-east", "zone": "r-east-a",
             "address": "127.0.201.1", "nodes": 1}]


def stopped_cleanly(running: UpProcess) -> None:
    pgids = running.pgids()
    assert running.stop() == 0, running.output()
    left = wait_gone(lambda: running.leftovers(pgids))
    assert not left, f"processes left behind after SIGTERM: {left}"


def test_commands_in_the_folder_of_a_stopped_up_say_not_running(tmp_path: Path) -> None:
    running = UpProcess(tmp_path, CLUSTERS)
    try:
        running.wait_up()
        assert "s-east" in running.cli("get", "clusters").stdout
        token = running.state()["token"]
    finally:
        stopped_cleanly(running)

    state = json.loads((tmp_path / ".flotilla" / "up.json").read_text())
    assert state["status"] == "stopped"
    assert state["stoppedAt"]

    for args in (("get", "clusters"), ("status",), ("chaos", "revive-cluster", "s-east")):
        r = running.cli(*args, check=False)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (args, r.stderr)
        assert "not running" in lines[0], (args, lines)
        assert "start it again with 'flotilla up'" in lines[0], (args, lines)
        assert "refused" not in lines[0]
    # revive-cluster started nothing: no agent of this folder runs.
    folder = str(tmp_path)
    assert [p for p in proc_table() if p[2] != "Z" and folder in p[3]] == []

    # What the message says to do works, and the next `up` keeps the admin token.
    again = UpProcess(tmp_path, CLUSTERS)
    try:
        again.wait_up()
        assert again.state()["token"] == token
        assert again.state()["status"] == "running"
        assert "s-east" in again.cli("get", "clusters").stdout
    finally:
        stopped_cleanly(again)
