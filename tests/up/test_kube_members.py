"""clusters.yaml's Kubernetes entries and what `up` makes of them (no processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotilla.up import kube_members
from flotilla.up.identities import address_range
from flotilla.up.topology import TopologyError, load_clusters


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    return path


def test_runtime_and_kubeconfig_entries(tmp_path: Path) -> None:
    plans = load_clusters(write(tmp_path, """
clusters:
- {name: east-1}
- {name: south-1, runtime: kubernetes, nodes: 2}
- {name: west-1, kubeconfig: kube/west.yaml}
"""))
    east, south, west = plans
    assert (east.runtime, east.kubeconfig) == ("local", "")
    assert (south.runtime, south.kubeconfig) == ("kubernetes", "")
    # an existing cluster: the runtime is implied, the path is relative to the file
    assert west.runtime == "kubernetes"
    assert west.kubeconfig == str((tmp_path / "kube" / "west.yaml").resolve())
    assert kube_members.started_here(plans) == [south]

    data = tmp_path / ".flotilla"
    assert kube_members.runtime_argv(data, east)[:2] == ["--runtime", "local"]
    assert kube_members.runtime_argv(data, south) == [
        "--runtime", "kubernetes", "--kubeconfig",
        str(data.resolve() / "kube" / "south-1" / "kubeconfig")]
    assert kube_members.runtime_argv(data, west)[-1] == west.kubeconfig
    argv = kube_members.node_agent_argv(data, south, 1)
    assert argv[argv.index("--pod-cidr") + 1] == "127.121.0.0/16"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--node"] == [
        "south-1-node-1", "south-1-node-2"]

    # the agent may point endpoints at its node agent's pods only where up runs them
    assert "127.121.0.0/16" in address_range(south, 1)
    assert address_range(west, 2) == sorted({"127.0.0.1/32", f"{west.address}/32"})


def test_an_existing_cluster_gets_no_node_agent_and_no_chaos(tmp_path: Path) -> None:
    (plan,) = load_clusters(write(tmp_path, "clusters: [{name: w, kubeconfig: /k/w}]"))

    def spawn(*_args: Any, **_kw: Any) -> Any:
        raise AssertionError("nothing is started for an existing cluster")
    fields = kube_members.start_node_agent(tmp_path, plan, 0, spawn, {})
    assert fields == {"runtime": "kubernetes", "kubeconfig": "/k/w", "kubeStarted": False}
    with pytest.raises(RuntimeError, match="did not start its apiserver"):
        kube_members.kill_apiserver(tmp_path, {"name": "w", **fields})


@pytest.mark.parametrize(("entry", "error"), [
    ("{name: a, runtime: docker}", r"runtime: expected one of local, kubernetes"),
    ("{name: a, runtime: local, kubeconfig: /k}", r"kubeconfig: only with runtime"),
    ("{name: a, kubeconfig: [x]}", r"kubeconfig: expected a path"),
])
def test_bad_kubernetes_entries_are_refused(tmp_path: Path, entry: str, error: str) -> None:
    with pytest.raises(TopologyError, match=error):
        load_clusters(write(tmp_path, f"clusters: [{entry}]"))
