"""Breaking things on purpose: whole clusters (process groups), nodes and pods.

A cluster is killed or paused through its process group, exactly as a machine dying
or hanging would look to the control plane: no goodbye, heartbeats just stop. Nodes
and pods are broken through the cluster's agent, since only it knows which processes
belong to them.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from flotilla.up import kube_members
from flotilla.up.state import cluster_entry, locked, pid_alive, require_running, write_state
from flotilla.up.supervisor import group_alive, signal_group, start_process


def cluster_groups(entry: dict[str, Any]) -> list[int]:
    """Every process group that may hold the cluster's processes: the current agent's,
    and older ones whose pods a restarted agent adopted."""
    return sorted({int(entry["pgid"]), *(int(g) for g in entry.get("groups", []))})


def _signal_cluster(data_dir: Path, cluster: str, sig: int) -> int:
    entry = cluster_entry(require_running(data_dir), cluster)
    if kube_members.is_kubernetes(entry):  # a Kubernetes member dies with its API
        if sig == signal.SIGKILL:
            return kube_members.kill_apiserver(data_dir, entry)
        return kube_members.signal_apiserver(data_dir, entry, sig)
    hit = [g for g in cluster_groups(entry) if group_alive(g) and signal_group(g, sig)]
    if not hit:
        raise RuntimeError(f"cluster {cluster} is not running (process group "
                           f"{entry['pgid']} is gone)")
    return int(entry["pgid"])


def kill_cluster(data_dir: Path, cluster: str) -> int:
    """SIGKILL the cluster's whole process group (agent and pods); returns the pgid."""
    return _signal_cluster(data_dir, cluster, signal.SIGKILL)


def pause_cluster(data_dir: Path, cluster: str) -> int:
    """SIGSTOP the group: a hang, not a crash. Sockets stay open; nothing answers."""
    return _signal_cluster(data_dir, cluster, signal.SIGSTOP)


def resume_cluster(data_dir: Path, cluster: str) -> int:
    return _signal_cluster(data_dir, cluster, signal.SIGCONT)


def revive_cluster(data_dir: Path, cluster: str) -> int:
    """Start a cluster's agent again, with the command line `up` used. The new agent
    adopts whatever pods survived (they stay in their old process group, which is kept
    on record so chaos and shutdown still reach them) and rebuilds the rest. Refused
    once `up` stops or dies: nothing would stop the new agent."""
    with locked(data_dir):
        state = require_running(data_dir)
        entry = cluster_entry(state, cluster)
        if kube_members.is_kubernetes(entry):
            return kube_members.revive_apiserver(data_dir, entry)
        if pid_alive(int(entry["pid"])):
            raise RuntimeError(f"cluster {cluster}'s agent is still running (pid "
                               f"{entry['pid']}); kill it first")
        proc = start_process(list(entry["argv"]), Path(entry["log"]), new_group=True)
        for c in state["clusters"]:
            if c["name"] == cluster:
                c["groups"] = [g for g in cluster_groups(c) if group_alive(g)]
                c["pid"] = c["pgid"] = proc.pid
        write_state(data_dir, state)
    return proc.pid


# -- `up --ha`: API servers and etcd members -------------------------------------------

#: up.json's list for each kind of control-plane part, and how messages name one.
HA_KINDS = {"servers": "API server", "etcd": "etcd member"}


def ha_entry(state: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """The up.json entry of server or etcd member ``name``; a clear error when this `up`
    was not started with --ha or has no part of that name (the known ones listed)."""
    what = HA_KINDS[kind]
    entries = state.get(kind)
    if not isinstance(entries, list):
        raise KeyError(f"this 'flotilla up' was not started with --ha: it has no {what}s "
                       "to kill or revive (start it with 'flotilla up --ha')")
    for entry in entries:
        if entry.get("name") == name:
            return dict(entry)
    known = ", ".join(str(e.get("name", "?")) for e in entries)
    raise KeyError(f"no {what} {name!r} in this 'flotilla up' ({kind}: {known})")


def kill_part(data_dir: Path, kind: str, name: str) -> int:
    """SIGKILL a server's or etcd member's process group (no goodbye, as a machine
    dying); returns its pid."""
    entry = ha_entry(require_running(data_dir), kind, name)
    pgid = int(entry["pgid"])
    if not (group_alive(pgid) and signal_group(pgid, signal.SIGKILL)):
        raise RuntimeError(f"{HA_KINDS[kind]} {name} is not running (process group "
                           f"{pgid} is gone)")
    return int(entry["pid"])


def revive_part(data_dir: Path, kind: str, name: str) -> int:
    """Start a killed server or etcd member again with the command line (and extra
    environment) `up` used: the same ports, data dir and certificates (an etcd member
    rejoins with its data)."""
    with locked(data_dir):
        state = require_running(data_dir)
        entry = ha_entry(state, kind, name)
        if group_alive(int(entry["pgid"])):
            raise RuntimeError(f"{HA_KINDS[kind]} {name} is still running (pid "
                               f"{entry['pid']}); kill it first")
        env = {str(k): str(v) for k, v in (entry.get("env") or {}).items()}
        proc = start_process(list(entry["argv"]), Path(entry["log"]), new_group=True,
                             env=env)
        for e in state[kind]:
            if e["name"] == name:
                e["pid"] = e["pgid"] = proc.pid
        if kind == "servers" and state[kind][0]["name"] == name:
            state["serverPid"] = proc.pid
        write_state(data_dir, state)
    return proc.pid
