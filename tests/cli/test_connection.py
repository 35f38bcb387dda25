"""Which server a CLI command talks to, and which token it sends there.

Servers here are real HTTP listeners on loopback that record the ``Authorization``
header they receive: "clone" stands for a server named by a ``.flotilla/up.json`` that
came with a cloned folder, "mine" for the user's own server in
``~/.config/flotilla/config.yaml`` (the test's own home, see tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.cli.config import ConfigError, Source, config_path, pair, write_config
from flotilla.up.state import owner
from tests.cli.recorder import Recorder, recorder, recorder_ca
from tests.cli.serverproc import flotilla

MINE_TOKEN = "mine-secret"


@pytest.fixture(autouse=True)
def trust_recorders(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorders serve HTTPS from one test CA: the CLI is told to trust it, as a
    user passes FLOTILLA_CA_FILE (a CA without a server is trusted for any server)."""
    monkeypatch.setenv("FLOTILLA_CA_FILE", str(recorder_ca()))


@pytest.fixture
def mine() -> Iterator[Recorder]:
    with recorder() as rec:
        yield rec


@pytest.fixture
def clone() -> Iterator[Recorder]:
    with recorder() as rec:
        yield rec


def write_up(folder: Path, **fields: Any) -> None:
    (folder / ".flotilla").mkdir(exist_ok=True)
    (folder / ".flotilla" / "up.json").write_text(json.dumps(fields))


def get(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`flotilla get cm` in ``folder`` with the test's environment plus ``env``."""
    return flotilla("get", "cm", *args, cwd=folder, env={**os.environ, **env})


def one_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_a_cloned_up_json_never_receives_the_config_files_token(
        own_folder: Path, mine: Recorder, clone: Recorder) -> None:
    write_config(mine.url, MINE_TOKEN, config_path())
    write_up(own_folder, server=clone.url, **owner())  # "running": this test's own pid

    r = get(own_folder)
    assert r.returncode == 0, r.stderr
    assert clone.tokens == [None], "the folder's server gets no token it did not bring"
    assert mine.requests == []

    # Its own token, written next to its server, is the one it gets.
    write_up(own_folder, server=clone.url, token="clone-token", **owner())
    assert get(own_folder).returncode == 0
    assert clone.tokens[-1] == "Bearer clone-token"
    assert mine.requests == []
    assert f"Bearer {MINE_TOKEN}" not in clone.tokens


def test_a_token_without_its_server_is_refused_not_sent(
        own_folder: Path, mine: Recorder, clone: Recorder) -> None:
    write_config(mine.url, MINE_TOKEN, config_path())
    write_up(own_folder, server=clone.url, **owner())
    line = one_error(get(own_folder, FLOTILLA_TOKEN=MINE_TOKEN))
    assert "FLOTILLA_TOKEN gives a token without a server" in line
    assert "FLOTILLA_SERVER" in line
    assert str(Path(".flotilla") / "up.json") in line
    line = one_error(get(own_folder, "--token", MINE_TOKEN))
    assert "--token gives a token without a server" in line
    assert "give --server too" in line
    assert clone.requests == [], "nothing may be sent"
    assert mine.requests == []
    # With its server, the same token goes where it was meant to.
    assert get(own_folder, FLOTILLA_SERVER=mine.url, FLOTILLA_TOKEN="env-token").returncode == 0
    assert get(own_folder, "--server", mine.url, "--token", "flag-token").returncode == 0
    assert mine.tokens == ["Bearer env-token", "Bearer flag-token"]
    assert clone.requests == []


def test_explicit_server_takes_a_token_only_from_a_source_naming_it(
        own_folder: Path, mine: Recorder, clone: Recorder) -> None:
    write_config(mine.url, MINE_TOKEN, config_path())
    assert get(own_folder, "--server", clone.url).returncode == 0
    assert get(own_folder, FLOTILLA_SERVER=clone.address).returncode == 0
    assert clone.tokens == [None, None]
    # The same server, however written (host:port, trailing slash), gets its token.
    assert get(own_folder, "--server", mine.address).returncode == 0
    assert get(own_folder, FLOTILLA_SERVER=mine.url + "/").returncode == 0
    assert mine.tokens == [f"Bearer {MINE_TOKEN}"] * 2
    # The first source naming that server wins: here the folder's up.json.
    write_up(own_folder, server=mine.address, token="up-token", **owner())
    assert get(own_folder, "--server", mine.url).returncode == 0
    assert mine.tokens[-1] == "Bearer up-token"
    assert f"Bearer {MINE_TOKEN}" not in clone.tokens


def test_flags_then_environment_then_folder_then_config(
        own_folder: Path, mine: Recorder, clone: Recorder) -> None:
    write_config(mine.url, MINE_TOKEN, config_path())
    write_up(own_folder, server=clone.url, token="up-token", **owner())
    env_pair = {"FLOTILLA_SERVER": clone.url, "FLOTILLA_TOKEN": "env-token"}
    assert get(own_folder, "--server", mine.url, "--token", "flag-token",
               **env_pair).returncode == 0
    assert get(own_folder, **env_pair).returncode == 0
    assert get(own_folder).returncode == 0
    assert get(Path(own_folder).parent).returncode == 0  # no up.json there: the config
    assert mine.tokens == ["Bearer flag-token", f"Bearer {MINE_TOKEN}"]
    assert clone.tokens == ["Bearer env-token", "Bearer up-token"]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


@pytest.mark.parametrize("state", [
    pytest.param(lambda: {"status": "stopped", "stoppedAt": "2026-01-02T03:04:05Z",
                          "pid": dead_pid()}, id="stopped"),
    pytest.param(lambda: {"status": "running", "pid": dead_pid()}, id="pid-gone"),
    pytest.param(lambda: {**owner(), "pidStart": -1}, id="pid-reused"),
])
def test_a_stopped_or_dead_up_says_not_running(own_folder: Path, clone: Recorder,
                                               state: Any) -> None:
    write_up(own_folder, server=clone.url, token="up-token", **state())
    for args in (("get", "cm"), ("status",), ("chaos", "kill-cluster", "east-1")):
        line = one_error(flotilla(*args, cwd=own_folder))
        assert "'flotilla up' is not running in this folder" in line, (args, line)
        assert "start it again with 'flotilla up'" in line, (args, line)
        assert "refused" not in line
    data_dir = own_folder / ".flotilla"
    line = one_error(flotilla("status", "--data-dir", str(data_dir), cwd=own_folder.parent))
    assert f"'flotilla up' is not running on {data_dir}" in line
    assert f"start it again with 'flotilla up --data-dir {data_dir}'" in line
    assert clone.requests == [], "a stopped up's server is not even tried"
    # An explicit server elsewhere still works from this folder (its own token pair).
    with recorder() as other:
        r = flotilla("get", "cm", "--server", other.url, "--token", "t", cwd=own_folder)
        assert r.returncode == 0, r.stderr
        assert other.tokens == ["Bearer t"]


def src(server: str | None, token: str | None, name: str) -> Source:
    return Source(server, token, name, name)


@pytest.mark.parametrize(("found", "want"), [
    # Nothing named: the default server, with the first token given.
    ([src(None, None, "flags"), src(None, "t", "env")],
     ("https://127.0.0.1:8443", "t", "env")),
    # The server's own source has a token: that one, even if a lower one names it too.
    ([src("http://a", "ta", "up"), src("http://a", "tb", "cfg")], ("http://a", "ta", "up")),
    # No token with the server: the first source naming the same server.
    ([src("http://a", None, "flags"), src("http://b", "tb", "env"),
      src("http://a", "ta", "cfg")], ("http://a", "ta", "cfg")),
    # No source naming that server has a token: none is sent.
    ([src("http://a", None, "flags"), src("http://b", "tb", "cfg")], ("http://a", None, None)),
    # A token below the server's source that names no server is not the server's.
    ([src("http://a", None, "up"), src(None, "t", "cfg")], ("http://a", None, None)),
])
def test_pairing_rule(found: list[Source], want: tuple[str, str | None, str | None]) -> None:
    conn = pair(found)
    assert (conn.server, conn.token, conn.token_source) == want


def test_a_file_with_a_token_and_no_server_above_the_server_is_refused() -> None:
    with pytest.raises(ConfigError, match="add its server to up"):
        pair([src(None, None, "--server"), src(None, "t", "up"), src("http://a", "x", "cfg")])
