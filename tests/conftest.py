"""Every test runs as on a fresh machine, whatever folder and shell pytest starts in.

The CLI reads ``./.flotilla/up.json`` (left by ``flotilla up --demo`` in the repository
folder), ``$FLOTILLA_*`` and ``~/.config/flotilla/config.yaml``; the agent and the local
runtime default their state to ``./.flotilla/``. So no test may inherit the developer's
folder, home or ``FLOTILLA_*`` variables: before any fixture starts a process, the whole
session gets an empty home and an empty working directory, and then each test gets its
own, so one test's ``flotilla init`` or ``.flotilla/`` cannot reach the next. Processes a
test starts inherit both. A test that wants a config, a home or a folder makes it.

Pods run as the user that runs the suite (``FLOTILLA_POD_USER``, read by ``flotilla
agent --pod-user``, is set to it), not as ``nobody``: the interpreter and the test apps a
pod runs may live where ``nobody`` cannot read (a Python under /root, pytest's 0700
temporary folders). tests/runtimes/test_pod_user.py runs pods as ``nobody`` on purpose.

A suite started in the background of a script (``pytest &``) inherits SIGINT ignored,
and so would every process it starts: Ctrl-C (SIGINT) is given back its usual meaning so
a test that stops a command with it behaves as in a terminal.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import RUN_ROOT_VARIABLE

if TYPE_CHECKING:
    from flotilla.api.registry import Registry
    from tests.etcd_server import EtcdProcess

#: Where programs look for per-user files, relative to the (test's own) home.
USER_DIRS = {"XDG_CONFIG_HOME": ".config", "XDG_DATA_HOME": ".local/share",
             "XDG_STATE_HOME": ".local/state", "XDG_CACHE_HOME": ".cache"}


def isolate(mp: pytest.MonkeyPatch, root: Path) -> Path:
    """Point home, the per-user folders and the working directory into ``root``, drop
    every ``FLOTILLA_*`` variable but the pod user; returns the new working directory."""
    for name in list(os.environ):
        if name.startswith("FLOTILLA_"):
            mp.delenv(name)
    mp.setenv("FLOTILLA_POD_USER", f"{os.geteuid()}:{os.getegid()}")
    home = root / "home"
    mp.setenv("HOME", str(home))
    for var, sub in USER_DIRS.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        mp.setenv(var, str(home / sub))
    work = root / "work"
    work.mkdir()
    mp.chdir(work)
    return work


@pytest.fixture(scope="session", autouse=True)
def fresh_machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Session-wide, so module-scoped fixtures (servers, `flotilla up`) are covered too."""
    sigint = signal.getsignal(signal.SIGINT)
    if sigint == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(RUN_ROOT_VARIABLE, str(tmp_path_factory.getbasetemp().resolve()))
            yield isolate(mp, tmp_path_factory.mktemp("machine"))
    finally:
        signal.signal(signal.SIGINT, sigint)


@pytest.fixture(autouse=True)
def own_folder(fresh_machine: Path, tmp_path_factory: pytest.TempPathFactory,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own home and working directory (empty: no up.json, no config)."""
    return isolate(monkeypatch, tmp_path_factory.mktemp("isolated"))


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    """A real `Registry` over a real SQLite store in the test's own folder."""
    from flotilla.api.registry import Registry
    from flotilla.store.sqlite import open_sqlite_store

    store = await open_sqlite_store(tmp_path)
    try:
        yield Registry(store)
    finally:
        await store.close()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    """One real etcd for the session (tests/etcd_server.py); tests share it by key prefix."""
    from tests.etcd_server import start_etcd

    etcd = start_etcd(tmp_path_factory.mktemp("etcd"))
    try:
        yield etcd
    finally:
        etcd.stop()
