"""Kubernetes member clusters of `flotilla up`: a ``runtime: kubernetes`` entry of
clusters.yaml.

Without ``kubeconfig:``, `up` starts the cluster's control plane (etcd shared by all
of them, then a kube-apiserver, controller-manager and scheduler per cluster) with
``scripts/kube-up.sh`` under ``DATA_DIR/kube``, plus a node agent (`flotilla node-agent`)
whose Nodes run the bound pods as local processes on a loopback range of their own; and
stops all of it again on the way out. With ``kubeconfig: PATH`` the cluster is someone
else's: `up` only points the agent at it and never starts or stops anything there.

Either way the cluster's flotilla agent runs ``--runtime kubernetes --kubeconfig PATH``,
and up.json records the path in the cluster's entry (``kubeconfig``), so a test or an
operator can `kubectl --kubeconfig` into it.

Chaos on such a cluster is chaos on its API, as the issue describes a member dying:
`kill-cluster` SIGKILLs the apiserver (the agent keeps heartbeating and reports
"apiserver unreachable", so the cluster is tainted), `revive-cluster` starts it again
(same port, token and etcd data), pause/resume SIGSTOP/SIGCONT it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flotilla.up.topology import ClusterPlan

#: `up`'s ``start_process`` (argv, log, new group, env), passed in to keep this module
#: below the supervisor
Spawn = Callable[..., "subprocess.Popen[bytes]"]
Say = Callable[[str], None]

KUBE_DIR = "kube"


def kube_up_script() -> Path:
    """``scripts/kube-up.sh`` of this checkout (``$FLOTILLA_KUBE_UP`` overrides)."""
    override = os.environ.get("FLOTILLA_KUBE_UP")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "scripts" / "kube-up.sh"


def kube_dir(data_dir: Path) -> Path:
    return (data_dir / KUBE_DIR).resolve()


def started_here(plans: list[ClusterPlan]) -> list[ClusterPlan]:
    """The Kubernetes members whose control plane `up` starts (no kubeconfig given)."""
    return [p for p in plans if p.is_kubernetes and not p.kubeconfig]


def kube_up(*args: str, timeout: float = 900.0) -> str:
    """Run kube-up.sh; its stderr (the log lines) in the error when it fails."""
    run = subprocess.run(["bash", str(kube_up_script()), *args], capture_output=True,
                         text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    if run.returncode != 0:
        raise RuntimeError(f"scripts/kube-up.sh {' '.join(args)} failed "
                           f"(code {run.returncode}):\n{run.stderr[-3000:]}")
    return run.stdout


def kubeconfig_of(data_dir: Path, plan: ClusterPlan) -> str:
    return plan.kubeconfig or str(kube_dir(data_dir) / plan.name / "kubeconfig")


def start_control_planes(data_dir: Path, plans: list[ClusterPlan], say: Say) -> None:
    """Build (once, cached) and start the control planes of `started_here`."""
    names = [p.name for p in started_here(plans)]
    if not names:
        return
    say(f"starting Kubernetes control planes for {', '.join(names)} (scripts/kube-up.sh; "
        f"a first build takes minutes, later ones reuse the cache)")
    kube_up("up", str(kube_dir(data_dir)), *names)


def stop_control_planes(data_dir: Path, state: dict[str, Any]) -> None:
    """Stop what `start_control_planes` started (nothing when up.json names none)."""
    if state.get("kube"):
        kube_up("down", str(kube_dir(data_dir)), timeout=120)


def pod_cidr(index: int) -> str:
    """Each node agent's own loopback range for pod IPs: 127.120.0.0/16, 127.121..."""
    return f"127.{120 + index}.0.0/16"


def node_agent_argv(data_dir: Path, plan: ClusterPlan, index: int) -> list[str]:
    argv = [sys.executable, "-m", "flotilla", "node-agent",
            "--kubeconfig", kubeconfig_of(data_dir, plan),
            "--node-cpu", plan.node_cpu, "--node-memory", plan.node_memory,
            "--pod-cidr", pod_cidr(index), "--cluster", plan.name,
            "--region", plan.region, "--zone", plan.zone,
            "--state-dir", str((data_dir / "clusters" / plan.name / "node-agent").resolve())]
    for n in range(1, plan.nodes + 1):
        argv += ["--node", f"{plan.name}-node-{n}"]
    return argv


def runtime_argv(data_dir: Path, plan: ClusterPlan) -> list[str]:
    """The agent's runtime flags for ``plan``."""
    if not plan.is_kubernetes:
        return ["--runtime", "local", "--nodes", str(plan.nodes), "--node-cpu",
                plan.node_cpu, "--node-memory", plan.node_memory]
    return ["--runtime", "kubernetes", "--kubeconfig", kubeconfig_of(data_dir, plan)]


def start_node_agent(data_dir: Path, plan: ClusterPlan, index: int, spawn: Spawn,
                     env: dict[str, str]) -> dict[str, Any]:
    """The up.json fields of a Kubernetes member (its node agent started when `up`
    started its control plane); {} for a local one."""
    if not plan.is_kubernetes:
        return {}
    fields: dict[str, Any] = {"runtime": "kubernetes",
                              "kubeconfig": kubeconfig_of(data_dir, plan),
                              "kubeStarted": not plan.kubeconfig}
    if plan.kubeconfig:
        return fields
    log = data_dir / "logs" / f"node-agent-{plan.name}.log"
    proc = spawn(node_agent_argv(data_dir, plan, index), log, new_group=True, env=env)
    # its group is one of the cluster's: `up` stops it with the agent's
    fields.update(nodeAgent={"pid": proc.pid, "pgid": proc.pid, "log": str(log)},
                  groups=[proc.pid])
    return fields


# -- chaos ----------------------------------------------------------------------------

def is_kubernetes(entry: dict[str, Any]) -> bool:
    return entry.get("runtime") == "kubernetes"


def _started(data_dir: Path, entry: dict[str, Any], what: str) -> Path:
    if not entry.get("kubeStarted"):
        raise RuntimeError(f"cluster {entry['name']} is an existing Kubernetes cluster "
                           f"(kubeconfig {entry.get('kubeconfig')}): 'flotilla up' did not "
                           f"start its apiserver, so it cannot {what} it")
    return kube_dir(data_dir)


def apiserver_pid(data_dir: Path, entry: dict[str, Any]) -> int | None:
    """The pid of the cluster's running apiserver, or None."""
    try:
        pid = int((kube_dir(data_dir) / entry["name"] / "apiserver.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def kill_apiserver(data_dir: Path, entry: dict[str, Any]) -> int:
    """SIGKILL the member's kube-apiserver; returns its pid."""
    folder = _started(data_dir, entry, "kill")
    pid = apiserver_pid(data_dir, entry)
    if pid is None:
        raise RuntimeError(f"cluster {entry['name']}'s apiserver is not running")
    kube_up("stop", str(folder), str(entry["name"]), timeout=30)
    return pid


def signal_apiserver(data_dir: Path, entry: dict[str, Any], sig: int) -> int:
    """SIGSTOP/SIGCONT the member's apiserver (a hang, not a crash)."""
    _started(data_dir, entry, "pause or resume")
    pid = apiserver_pid(data_dir, entry)
    if pid is None:
        raise RuntimeError(f"cluster {entry['name']}'s apiserver is not running")
    os.kill(pid, sig)
    return pid


def revive_apiserver(data_dir: Path, entry: dict[str, Any]) -> int:
    """Start the member's apiserver again (same port, token, etcd prefix); its pid."""
    folder = _started(data_dir, entry, "revive")
    if apiserver_pid(data_dir, entry) is not None:
        raise RuntimeError(f"cluster {entry['name']}'s apiserver is still running; "
                           "kill it first")
    kube_up("start", str(folder), str(entry["name"]), timeout=120)
    pid = apiserver_pid(data_dir, entry)
    if pid is None:
        raise RuntimeError(f"cluster {entry['name']}'s apiserver did not start")
    return pid

