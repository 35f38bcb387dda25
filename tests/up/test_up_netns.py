"""`flotilla up --netns` killed with SIGKILL, then started again on the same data dir:
nothing of the first run's networks (namespace, veth, control address, processes
inside) survives the second start, and the second run's own are torn down at stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from flotilla.up import netns
from flotilla.up.topology import TopologyError, load_clusters
from tests.up.harness import FLOTILLA, UpProcess, proc_table, wait_gone

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="--netns needs root")]
CLUSTERS = [
    {"name": "n-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.241.1",
     "nodes": 1},
    # with WAN latency: a relay (no netem here) in a namespace of its own
    {"name": "n-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.242.1", "nodes": 1, "latency": "10ms"},
]


def _if_indexes(names: list[str]) -> set[int]:
    """The kernel's index of each host link named: a link deleted and created again
    under the same name has a new one."""
    out = set()
    for name in names:
        with contextlib.suppress(OSError):
            out.add(int(Path(f"/sys/class/net/{name}/ifindex").read_text()))
    return out


def _host_groups(up: UpProcess) -> set[int]:
    """The process groups of the run's host processes (server, gateway, DNS): not
    network-namespace leftovers, so the test stops them itself."""
    state = up.state()
    out = {int(state["serverPid"])}
    out |= {int(state[k]["pgid"]) for k in ("gateway", "dns") if k in state}
    return out


def test_sigkilled_up_leaves_nothing_after_the_next_start(tmp_path: Path) -> None:
    first = UpProcess(tmp_path, CLUSTERS, extra=("--netns",))
    host_groups: set[int] = set()
    second: UpProcess | None = None
    try:
        first.wait_up()
        tag = netns.run_tag(first.data_dir)
        old_inodes = set(netns.read_record(first.data_dir).values())
        old_links = _if_indexes(netns.host_links(tag))
        old_inside = netns.processes_in(old_inodes)
        assert len(old_links) == len(CLUSTERS)
        assert old_inside, "the agents and pods run inside the namespaces"
        relays = [p[0] for p in proc_table() if "flotilla.up.relay" in p[3]
                  and p[0] in old_inside]
        assert len(relays) == 1, "n-south's link has its relay"
        assert len(old_inodes) == len(CLUSTERS) + 1  # and the relay's namespace
        host_groups = _host_groups(first)
        # A data-plane cut in force is a host route, which outlives the links.
        ingress = netns.recorded_ingress(first.data_dir)
        assert len(ingress) == len(CLUSTERS)
        first.cli("chaos", "partition-cluster", "n-east", "--data-plane",
                  "--data-dir", str(first.data_dir))
        assert len(netns.prohibit_routes(ingress)) == 1

        first.proc.send_signal(signal.SIGKILL)
        first.stop()
        # `up` is gone; its networks and the processes inside them are not.
        assert set(netns.processes_in(old_inodes)) & set(old_inside), \
            "agents outlive a SIGKILLed up"
        assert any(x.startswith("route prohibit") for x in netns.leftovers(first.data_dir))
        for pgid in host_groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

        second = UpProcess(tmp_path, CLUSTERS, extra=("--netns",))
        second.wait_up()
        assert "removed what an earlier run left behind" in second.output()
        # The kernel may give the new namespaces the old inode numbers: the old ones
        # are told apart by their processes and links, which are never reused so soon.
        alive = {p[0] for p in proc_table() if p[2] != "Z"}
        assert not set(old_inside) & alive, "the first run's agents, pods, relay are gone"
        assert len([p for p in proc_table() if "flotilla.up.relay" in p[3]
                    and str(second.data_dir.resolve()) in p[3]]) == 1  # the new relay
        assert set(netns.read_record(second.data_dir).values())
        assert not _if_indexes(netns.host_links(tag)) & old_links
        assert len(netns.host_links(tag)) == len(CLUSTERS)
        assert len(netns.control_addresses(tag)) == 1
        assert netns.prohibit_routes(ingress) == []  # the cut went with the first run
        # A cut in force at a clean stop goes with the rest (checked by leftovers below).
        second.cli("chaos", "partition-cluster", "n-east", "--data-plane",
                   "--data-dir", str(second.data_dir))
        assert len(netns.prohibit_routes(netns.recorded_ingress(second.data_dir))) == 1
    finally:
        code = second.stop() if second is not None else 0
        first.stop()
        for pgid in host_groups:  # the first run's, should the test fail before
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    assert netns.leftovers(first.data_dir) == []
    left = wait_gone(lambda: [p for p in proc_table()
                              if p[2] != "Z" and str(tmp_path) in p[3]])
    assert not left, f"processes left behind: {left}"
    assert code == 0, second.output() if second is not None else ""


def test_a_recorded_inode_the_kernel_gave_to_another_namespace_is_left_alone(
        tmp_path: Path) -> None:
    """A SIGKILLed run's namespace that emptied is gone, and the kernel reuses its inode
    number: the namespace that holds it now (here: this test's own) is not ours, and
    its processes are neither leftovers nor killed."""
    data_dir = tmp_path / ".flotilla"
    data_dir.mkdir()
    mine = os.stat("/proc/self/ns/net").st_ino
    (data_dir / netns.RECORD).write_text(
        json.dumps({"tag": netns.run_tag(data_dir), "inodes": {"flc-gone": mine}}))
    assert os.getpid() in netns.processes_in({mine})
    assert netns.recorded_inodes(data_dir) == set()
    assert not [x for x in netns.leftovers(data_dir) if x.startswith("process")]
    netns.remove_leftovers(data_dir)  # kills nothing: this test is still running
    assert not (data_dir / netns.RECORD).exists()


def test_latency_is_a_duration_and_needs_netns(tmp_path: Path) -> None:
    config = tmp_path / "clusters.yaml"
    config.write_text("clusters:\n- {name: a, region: r, latency: 30ms}\n- {name: b}\n")
    assert [p.latency for p in load_clusters(config)] == [0.03, 0.0]
    config.write_text("clusters:\n- {name: a, latency: fast}\n")
    with pytest.raises(TopologyError, match=r"clusters\[0\]\.latency"):
        load_clusters(config)
    config.write_text("clusters:\n- {name: a, region: r, address: 127.0.243.1, "
                      "latency: 30ms}\n")
    done = subprocess.run(
        [*FLOTILLA, "up", "--data-dir", str(tmp_path / ".flotilla"), "--config",
         str(config), "--gateway-listen", "", "--dns-listen", ""],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "needs 'flotilla up --netns'" in done.stdout + done.stderr
