"""``flotilla node-agent``: Nodes of a Kubernetes cluster whose pods run as processes."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import click

from flotilla.cli.agent_cmd import parse_labels
from flotilla.cli.edge_cmd import serve_until_signal


@click.command("node-agent", epilog="""\b
Example (a cluster started by scripts/kube-up.sh):
  flotilla node-agent --kubeconfig ./kube/east/kubeconfig \\
      --node east-node-1 --node east-node-2 --pod-cidr 127.101.0.0/16
""")
@click.option("--kubeconfig", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Kubeconfig of the cluster whose Nodes this agent serves.")
@click.option("--context", help="Its context (default: the current one).")
@click.option("--node", "nodes", multiple=True, required=True,
              help="A Node to register and serve (repeat for several).")
@click.option("--node-cpu", default="4", show_default=True)
@click.option("--node-memory", default="8Gi", show_default=True)
@click.option("--node-pods", type=click.IntRange(min=1), default=110, show_default=True)
@click.option("--pod-cidr", default="127.100.0.0/16", show_default=True,
              help="Loopback range pod IPs come from; one per node agent on a machine.")
@click.option("--labels", metavar="K=V,...", help="Labels of every Node.")
@click.option("--cluster", default="", help="The member cluster's name (CLUSTER_NAME of pods).")
@click.option("--region", default="", help="Its region (CLUSTER_REGION of pods).")
@click.option("--zone", default="", help="Its zone (CLUSTER_ZONE of pods).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Pods' logs and homes (default ./.flotilla/node-agent).")
@click.option("--pod-user", metavar="USER[:GROUP]", envvar="FLOTILLA_POD_USER",
              help="Who pods run as (default: nobody when root).")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def node_agent(kubeconfig: Path, context: str | None, nodes: tuple[str, ...], node_cpu: str,
               node_memory: str, node_pods: int, pod_cidr: str, labels: str | None,
               cluster: str, region: str, zone: str, state_dir: Path | None,
               pod_user: str | None, verbose: bool) -> None:
    """Register Nodes in a kube-apiserver and run the pods bound to them as processes.

    A kubelet stand-in for machines without a container runtime: the pods the real
    kube-scheduler binds to these Nodes run with the local runtime's container, probe
    and restart code, each on its own loopback IP (see docs/kubernetes.md).
    """
    from flotilla.nodeagent.agent import NodeAgentConfig, run_node_agent

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s node-agent %(levelname)s %(message)s")
    cfg = NodeAgentConfig(kubeconfig=kubeconfig, context=context, nodes=nodes,
                          state_dir=state_dir or Path(".flotilla") / "node-agent",
                          cpu=node_cpu, memory=node_memory, pods=node_pods,
                          pod_cidr=pod_cidr, labels=parse_labels(labels), pod_user=pod_user,
                          cluster=cluster, region=region, zone=zone)
    serve_until_signal(functools.partial(run_node_agent, cfg))
