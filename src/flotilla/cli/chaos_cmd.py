"""``flotilla chaos``: break clusters, nodes and pods on purpose, to see failover work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from flotilla.cli.members import agent_endpoint, member_call
from flotilla.cli.output import echo
from flotilla.cli.session import CliError, connection_options
from flotilla.up import chaos as actions
from flotilla.up.state import DEFAULT_DATA_DIR

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR,
    show_default=True, help="The data dir of the 'flotilla up' that runs the cluster.")


@click.group(epilog="""\b
Examples:
  flotilla chaos kill-cluster east-1      # SIGKILL the cluster's whole process group
  (a Kubernetes member of up: kill/revive/pause/resume act on its kube-apiserver)
  flotilla chaos revive-cluster east-1    # start its agent again
  flotilla chaos pause-cluster south-1    # SIGSTOP: a hung cluster
  flotilla chaos resume-cluster south-1
  flotilla chaos fail-node east-1 east-1-node-1
  flotilla chaos kill-pod east-1 default/shop-7d4f9-abcde
With 'flotilla up --netns' (root; docs/netns.md):
  flotilla chaos partition-cluster east-1                   # the whole link down
  flotilla chaos partition-cluster east-1 --control-plane   # agent -> API cut only
  flotilla chaos partition-cluster east-1 --data-plane      # gateway -> pods cut only
  flotilla chaos heal-cluster east-1
  flotilla chaos set-latency east-1 120ms    # a cluster given 'latency:' in clusters.yaml
With 'flotilla up --ha':
  flotilla chaos kill-server server-2     # SIGKILL one API server
  flotilla chaos revive-server server-2   # same ports, data dir and certificates
  flotilla chaos kill-etcd etcd-1         # SIGKILL one etcd member (2 of 3 keep quorum)
  flotilla chaos revive-etcd etcd-1       # it rejoins with its data dir
""")
def chaos() -> None:
    """Break things on purpose (clusters started by 'flotilla up')."""


@contextmanager
def _refusals() -> Iterator[None]:
    """What `flotilla.up`'s chaos and partition actions raise for a name, state or value
    they cannot act on, as the one-line CLI error they already word."""
    try:
        yield
    except (KeyError, RuntimeError, FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc.args[0] if exc.args else exc)) from None


def _run(action: str, fn: Callable[[Path, str], int], data_dir: Path, cluster: str) -> int:
    with _refusals():
        pgid = fn(data_dir, cluster)
    echo(f"cluster {cluster}: {action} (process group {pgid})")
    return pgid


@chaos.command("kill-cluster")
@click.argument("cluster")
@data_dir_option
def kill_cluster(cluster: str, data_dir: Path) -> None:
    """SIGKILL a cluster's agent and all its pods at once."""
    _run("killed", actions.kill_cluster, data_dir, cluster)


@chaos.command("pause-cluster")
@click.argument("cluster")
@data_dir_option
def pause_cluster(cluster: str, data_dir: Path) -> None:
    """SIGSTOP a cluster: a hang, not a crash ('resume-cluster' continues it)."""
    _run("paused", actions.pause_cluster, data_dir, cluster)


@chaos.command("resume-cluster")
@click.argument("cluster")
@data_dir_option
def resume_cluster(cluster: str, data_dir: Path) -> None:
    """SIGCONT a paused cluster."""
    _run("resumed", actions.resume_cluster, data_dir, cluster)


@chaos.command("revive-cluster")
@click.argument("cluster")
@data_dir_option
def revive_cluster(cluster: str, data_dir: Path) -> None:
    """Start a killed cluster's agent again (it re-adopts or rebuilds its pods)."""
    _run("started again", actions.revive_cluster, data_dir, cluster)


@chaos.command("fail-node")
@click.argument("cluster")
@click.argument("node")
@connection_options
def fail_node(cluster: str, node: str, server: str | None, token: str | None) -> None:
    """Mark a node NotReady: its pods are killed and rebuilt on other nodes."""
    endpoint, tok = agent_endpoint(cluster, server, token)
    member_call(endpoint, tok, "POST", f"/nodes/{node}/fail")
    echo(f"node {node} in cluster {cluster} failed")


@chaos.command("recover-node")
@click.argument("cluster")
@click.argument("node")
@connection_options
def recover_node(cluster: str, node: str, server: str | None, token: str | None) -> None:
    """Make a failed node Ready again."""
    endpoint, tok = agent_endpoint(cluster, server, token)
    member_call(endpoint, tok, "POST", f"/nodes/{node}/recover")
    echo(f"node {node} in cluster {cluster} recovered")


@chaos.command("kill-pod")
@click.argument("cluster")
@click.argument("pod", metavar="[NAMESPACE/]POD")
@connection_options
def kill_pod(cluster: str, pod: str, server: str | None, token: str | None) -> None:
    """SIGKILL a pod's processes, as a crash would; its Deployment replaces it."""
    ns, _, name = pod.rpartition("/")
    endpoint, tok = agent_endpoint(cluster, server, token)
    member_call(endpoint, tok, "POST", f"/pods/{ns or 'default'}/{name}/kill")
    echo(f"pod {ns or 'default'}/{name} in cluster {cluster} killed")


def _run_part(action: str, fn: Callable[[Path, str, str], int], kind: str, data_dir: Path,
              name: str) -> None:
    with _refusals():
        pid = fn(data_dir, kind, name)
    echo(f"{actions.HA_KINDS[kind]} {name}: {action} (pid {pid})")


@chaos.command("kill-server")
@click.argument("name")
@data_dir_option
def kill_server(name: str, data_dir: Path) -> None:
    """SIGKILL one API server of 'flotilla up --ha' (server-1, server-2, server-3)."""
    _run_part("killed", actions.kill_part, "servers", data_dir, name)


@chaos.command("revive-server")
@click.argument("name")
@data_dir_option
def revive_server(name: str, data_dir: Path) -> None:
    """Start a killed API server again, on its ports, data dir and certificates."""
    _run_part("started again", actions.revive_part, "servers", data_dir, name)


@chaos.command("kill-etcd")
@click.argument("name")
@data_dir_option
def kill_etcd(name: str, data_dir: Path) -> None:
    """SIGKILL one etcd member of 'flotilla up --ha' (etcd-1, etcd-2, etcd-3)."""
    _run_part("killed", actions.kill_part, "etcd", data_dir, name)


@chaos.command("revive-etcd")
@click.argument("name")
@data_dir_option
def revive_etcd(name: str, data_dir: Path) -> None:
    """Start a killed etcd member again: it rejoins the cluster with its data dir."""
    _run_part("started again", actions.revive_part, "etcd", data_dir, name)


# -- `up --netns`: network partitions (docs/netns.md) ----------------------------------

@chaos.command("partition-cluster")
@click.argument("cluster")
@click.option("--control-plane", "mode", flag_value="control-plane",
              help="Cut only the agent's path to the API server (traffic still flows).")
@click.option("--data-plane", "mode", flag_value="data-plane",
              help="Cut only the gateway's path to the cluster's ingress and pods "
                   "(heartbeats still arrive).")
@data_dir_option
def partition_cluster(cluster: str, mode: str | None, data_dir: Path) -> None:
    """Cut a cluster's network link ('flotilla up --netns'); default: the whole link."""
    from flotilla.up import partition

    with _refusals():
        what = partition.partition(data_dir, cluster, mode or "link")
    echo(f"cluster {cluster}: partitioned ({mode or 'link'}): {what}")


@chaos.command("heal-cluster")
@click.argument("cluster")
@data_dir_option
def heal_cluster(cluster: str, data_dir: Path) -> None:
    """Undo 'partition-cluster': the cluster's link, routes and rules as before."""
    from flotilla.up import partition

    with _refusals():
        what = partition.heal(data_dir, cluster)
    echo(f"cluster {cluster}: {what}")


@chaos.command("set-latency")
@click.argument("cluster")
@click.argument("latency")
@data_dir_option
def set_latency(cluster: str, latency: str, data_dir: Path) -> None:
    """Change a cluster's WAN latency (one way, e.g. 120ms) on its running link: one
    'flotilla up --netns' started with 'latency:' for it in clusters.yaml."""
    from flotilla.up import partition

    with _refusals():
        what = partition.set_latency(data_dir, cluster, latency)
    echo(f"cluster {cluster}: {what}")
