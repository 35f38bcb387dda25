"""One pair of real Kubernetes control planes for the whole session (each apiserver
takes about 5 s to start and 300 MiB to run; the tests use their own namespaces)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube_clusters import KubeClusters


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeClusters]:
    clusters = KubeClusters.start(tmp_path_factory.mktemp("kube"), "kube-a", "kube-b")
    try:
        yield clusters
    finally:
        clusters.stop()
