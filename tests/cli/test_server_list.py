"""The CLI given several servers: ``--server DEAD,LIVE``, ``FLOTILLA_SERVER`` and a
context's ``servers:`` list, with the token still sent only where its source named.

"Live" servers are the recording HTTPS listeners of tests/cli/recorder.py; "dead" is a
loopback port nobody listens on.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flotilla.cli.config import config_path
from tests.cli.recorder import Recorder, recorder, recorder_ca
from tests.cli.serverproc import flotilla
from tests.helpers import free_port


@pytest.fixture(autouse=True)
def trust_recorders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_CA_FILE", str(recorder_ca()))


@pytest.fixture
def live() -> Iterator[Recorder]:
    with recorder() as rec:
        yield rec


@pytest.fixture
def other() -> Iterator[Recorder]:
    with recorder() as rec:
        yield rec


def dead() -> str:
    return f"https://127.0.0.1:{free_port()}"


def get(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return flotilla("get", "cm", *args, env={**os.environ, **env})


def write_contexts(*contexts: dict[str, object]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"current-context": contexts[0]["name"],
                                    "contexts": list(contexts)}))
    path.chmod(0o600)


def test_get_with_a_dead_server_first_works_through_the_live_one(live: Recorder) -> None:
    r = get("--server", f"{dead()},{live.url}", "--token", "t")
    assert r.returncode == 0, r.stderr
    assert live.tokens == ["Bearer t"]
    r = get(FLOTILLA_SERVER=f"{dead()},{live.address}", FLOTILLA_TOKEN="e")
    assert r.returncode == 0, r.stderr
    assert live.tokens[-1] == "Bearer e"


def test_every_server_dead_names_them_all() -> None:
    a, b = dead(), dead()
    r = get("--server", f"{a},{b}")
    assert r.returncode == 1
    assert f"cannot reach any of the Flotilla servers {a}, {b}" in r.stderr


def test_a_bad_list_is_refused_naming_the_item_and_nothing_is_sent(live: Recorder) -> None:
    r = get("--server", f"{live.url},ftp://x:1", "--token", "t")
    assert r.returncode != 0
    assert "item 2 of 2: 'ftp://x:1'" in r.stderr
    r = get("--server", f"{live.url},{live.address}")
    assert "listed twice" in r.stderr
    assert live.requests == []


def test_a_context_lists_servers_and_lends_its_token_only_to_those(
        live: Recorder, other: Recorder) -> None:
    down = dead()
    write_contexts({"name": "ha", "servers": [down, live.url], "token": "ctx-token"})
    assert get().returncode == 0
    assert live.tokens == ["Bearer ctx-token"]
    # One of its servers, named by a flag: the context vouches for it.
    assert get("--server", live.address).returncode == 0
    assert live.tokens[-1] == "Bearer ctx-token"
    # A list holding a server the context never named gets no token at all.
    assert get("--server", f"{other.url},{live.url}").returncode == 0
    assert other.tokens == [None]
    assert "Bearer ctx-token" not in other.tokens


def test_the_old_single_server_shape_still_works(live: Recorder) -> None:
    write_contexts({"name": "one", "server": live.url, "token": "old"})
    assert get().returncode == 0
    assert live.tokens == ["Bearer old"]


@pytest.mark.parametrize(("context", "named"), [
    ({"servers": "https://a:1"}, "'servers' must be a list of URLs"),
    ({"servers": ["https://a:1", "gopher://b"]}, "'servers': item 2 of 2"),
    ({"server": "https://c:1", "servers": ["https://a:1"]}, "'server' https://c:1 is not one"),
])
def test_a_bad_servers_entry_names_the_file_and_context(
        context: dict[str, object], named: str) -> None:
    write_contexts({"name": "bad", **context})
    r = get()
    assert r.returncode == 1
    assert named in r.stderr
    assert "(context bad)" in r.stderr
    assert str(Path(config_path())) in r.stderr
