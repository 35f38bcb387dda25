"""The real kubectl (1.32) discovers every kind through Flotilla's discovery documents."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flotilla.resources.kinds import KINDS
from tests.api.conftest import ServerProcess, start_server

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("kubectl")
    srv = start_server(tmp)
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "flotilla",
        "clusters": [{"name": "flotilla", "cluster": {
            "server": srv.url,
            "certificate-authority-data": base64.b64encode(srv.ca.read_bytes()).decode()}}],
        "users": [{"name": "admin", "user": {"token": srv.token}}],
        "contexts": [{"name": "flotilla", "context": {"cluster": "flotilla", "user": "admin"}}],
    }
    path = tmp / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    try:
        yield srv, path
    finally:
        srv.stop()
        srv.kill()


def kubectl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run([KUBECTL, "--kubeconfig", str(config), *args], capture_output=True,
                          text=True, timeout=60, env={"HOME": str(config.parent)})


def test_api_resources_lists_every_kind_with_short_names(
        kube: tuple[ServerProcess, Path]) -> None:
    _, config = kube
    out = kubectl(config, "api-resources", "--no-headers")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for kind in KINDS:
        row = [ln for ln in lines if ln.split()[0] == kind.plural and kind.kind in ln.split()]
        assert row, f"{kind.plural} missing from kubectl api-resources:\n{out.stdout}"
    deploy = next(ln for ln in lines if ln.split()[0] == "deployments")
    assert "deploy" in deploy.split()
    assert "apps/v1" in deploy.split()
    groups = {ln.split()[-3] for ln in lines}
    assert any(g.startswith("policy.karmada.io/") for g in groups)


def test_kubectl_prints_a_not_found_status(kube: tuple[ServerProcess, Path]) -> None:
    _, config = kube
    out = kubectl(config, "get", "cluster", "nowhere")
    assert out.returncode != 0
    assert 'Error from server (NotFound): clusters.cluster.flotilla.io "nowhere" not found' \
        in out.stderr
