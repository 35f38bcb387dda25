"""Network partitions of a cluster started by `flotilla up --netns`.

Three cuts, each with what the kernel has here (no netem, no iptables needed):

* ``link``: the host end of the cluster's veth pair goes down. Nothing crosses: the
  agent's heartbeats stop and the gateway's connections to its pods fail, as a
  cluster whose uplink died (its processes keep running).
* ``control-plane``: inside the cluster's namespace, a ``prohibit`` route to the
  control address (where the API server listens). The agent cannot reach the API
  (heartbeats stop: the cluster turns Unknown) while the gateway still reaches its
  pods: Karmada's false-positive eviction, on purpose.
* ``data-plane``: on the host, a ``prohibit`` route to the cluster's ingress address
  (where its pods listen). The gateway's connections fail at once while heartbeats,
  which leave from the agent's own address, still arrive.

`heal` undoes whichever cut is on. The cut in force is kept in up.json (the cluster
entry's ``partition``), so `flotilla status` shows it and a second cut is refused.
"""

from __future__ import annotations

from pathlib import Path

from flotilla.resources.models.common import parse_duration
from flotilla.up import netns
from flotilla.up.netns import NetnsError, NetnsLayout, in_mounts_of, ip, layout_of
from flotilla.up.state import locked, require_running, write_state

MODES = ("link", "control-plane", "data-plane")


def _apply(layout: NetnsLayout, up_pid: int, cluster: str, mode: str, *, on: bool) -> None:
    link = layout.link(cluster)
    check = on  # healing something already healed is fine
    if mode == "link":
        ip("link", "set", link.host_if, "down" if on else "up")
    elif mode == "control-plane":
        try:
            in_mounts_of(up_pid, "-n", link.netns, "route", "add" if on else "del",
                         "prohibit", f"{layout.control_address}/32")
        except NetnsError:
            if check:
                raise
    elif mode == "data-plane":
        ip("route", "add" if on else "del", "prohibit", f"{link.ingress_address}/32",
           check=check)
    else:
        raise ValueError(f"unknown partition mode {mode!r} (one of {', '.join(MODES)})")


def partition(data_dir: Path, cluster: str, mode: str = "link") -> str:
    """Cut ``cluster``'s ``mode`` path; returns a line saying what was cut."""
    if mode not in MODES:
        raise ValueError(f"unknown partition mode {mode!r} (one of {', '.join(MODES)})")
    with locked(data_dir):
        state = require_running(data_dir)
        layout = layout_of(state)
        entry = _entry(state, cluster)
        if entry.get("partition"):
            raise NetnsError(f"cluster {cluster} is already partitioned "
                             f"({entry['partition']}); heal it first")
        _apply(layout, int(state["pid"]), cluster, mode, on=True)
        entry["partition"] = mode
        write_state(data_dir, state)
    return describe(layout, cluster, mode)


def heal(data_dir: Path, cluster: str) -> str:
    """Undo the cut on ``cluster`` (every kind of cut, whichever is recorded)."""
    with locked(data_dir):
        state = require_running(data_dir)
        layout = layout_of(state)
        entry = _entry(state, cluster)
        was = str(entry.pop("partition", "") or "")
        for mode in MODES:
            _apply(layout, int(state["pid"]), cluster, mode, on=False)
        write_state(data_dir, state)
    return f"healed ({was} cut removed)" if was else "healed (nothing was cut)"


def set_latency(data_dir: Path, cluster: str, latency: str) -> str:
    """Change ``cluster``'s one-way WAN latency (a duration) on its running link."""
    seconds = parse_duration(latency)
    with locked(data_dir):
        state = require_running(data_dir)
        layout = layout_of(state)
        _entry(state, cluster)
        return netns.set_latency(data_dir, layout.link(cluster), seconds, int(state["pid"]))


def describe(layout: NetnsLayout, cluster: str, mode: str) -> str:
    link = layout.link(cluster)
    if mode == "link":
        return f"link {link.host_if} down: nothing reaches {link.block}"
    if mode == "control-plane":
        return (f"in {link.netns}: prohibit {layout.control_address} (the API server); "
                f"the ingress {link.ingress_address} still answers")
    return (f"prohibit {link.ingress_address} (ingress and pods) from the host; the "
            f"agent {link.agent_address} still heartbeats")


def _entry(state: dict[str, object], cluster: str) -> dict[str, object]:
    clusters = state.get("clusters")
    for entry in clusters if isinstance(clusters, list) else []:
        if isinstance(entry, dict) and entry.get("name") == cluster:
            return entry
    raise KeyError(f"no cluster {cluster!r} in this 'flotilla up'")
