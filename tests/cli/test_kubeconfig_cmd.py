"""``flotilla kubeconfig`` gives the real kubectl a way in: the same server, CA and
token as the ``flotilla`` command, in a file nobody else can read."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli.serverproc import ServerProcess, api_only_args, clean_env, flotilla

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("kubeconfig") / "data", *api_only_args())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _env(srv: ServerProcess, home: Path) -> dict[str, str]:
    # The token only in the environment, never on a command line.
    return clean_env(HOME=str(home), FLOTILLA_SERVER=srv.url, FLOTILLA_TOKEN=srv.token,
                     FLOTILLA_CA_FILE=str(srv.ca), FLOTILLA_CONFIG=str(home / "none"))


def test_printed_kubeconfig_carries_server_ca_and_token(server: ServerProcess,
                                                        tmp_path: Path) -> None:
    done = flotilla("kubeconfig", env=_env(server, tmp_path))
    assert done.returncode == 0, done.stderr
    doc = yaml.safe_load(done.stdout)
    assert doc["kind"] == "Config"
    assert doc["current-context"] == "flotilla"
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == server.url
    assert "certificate-authority-data" in cluster
    assert doc["users"][0]["user"]["token"] == server.token


@pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl not installed")
def test_kubectl_reaches_flotilla_through_the_written_file(server: ServerProcess,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "kube" / "flotilla"
    path.parent.mkdir()
    done = flotilla("kubeconfig", "-o", str(path), env=_env(server, tmp_path))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    got = subprocess.run([KUBECTL, "get", "clusters", "-o", "name"], capture_output=True,
                         text=True, timeout=60, check=False,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                              "HOME": str(tmp_path), "KUBECONFIG": str(path)})
    assert got.returncode == 0, got.stderr
    assert "certificate" not in got.stderr.lower()


def test_no_token_is_a_clear_error(server: ServerProcess, tmp_path: Path) -> None:
    env = _env(server, tmp_path)
    del env["FLOTILLA_TOKEN"]
    done = flotilla("kubeconfig", env=env)
    assert done.returncode != 0
    assert "no token" in done.stderr
