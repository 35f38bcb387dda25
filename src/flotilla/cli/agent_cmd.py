"""``flotilla agent``: join a member cluster to a control plane (pull mode)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import click

from flotilla.agent.agent import run_agent
from flotilla.agent.config import AgentConfig
from flotilla.cli.credential import TOKEN_HELP, resolve_token, token_file_option
from flotilla.cli.edge_cmd import serve_until_signal
from flotilla.cli.server_list import SERVER_LIST_HELP, SERVERS
from flotilla.cli.session import CliError
from flotilla.client.servers import format_servers
from flotilla.runtimes import runtime_names
from flotilla.runtimes.local.users import parse_pod_user

_FILE = click.Path(dir_okay=False, path_type=Path)


def tls_options(fn: Any) -> Any:
    """The agent's TLS flags: the CA it verifies the API with, its endpoint's pair."""
    for option in reversed([
        click.option("--ca-file", type=_FILE, envvar="FLOTILLA_CA_FILE", metavar="PATH",
                     help="CA certificate (PEM) the API server is verified against."),
        click.option("--tls-cert", type=_FILE, metavar="PATH",
                     help="Serving certificate of the agent's endpoint (for --address)."),
        click.option("--tls-key", type=_FILE, metavar="PATH", help="Its private key."),
        click.option("--insecure-http", is_flag=True,
                     help="Serve the agent's endpoint over plain HTTP (only behind a TLS "
                          "terminator; says so loudly)."),
    ]):
        fn = option(fn)
    return fn


def parse_labels(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--labels: expected k=v[,k=v...], got {part!r}", exit_code=2)
        out[key.strip()] = value.strip()
    return out


@click.command(epilog="""\b
Example:
  (umask 077; flotilla token create agent-east-1 --cluster east-1 | tail -1 > east-1.token)
  flotilla cert create east-1 --host 127.0.11.1 --out ./east-1   # its endpoint's pair
  flotilla agent --server https://127.0.0.1:8443 --token-file east-1.token \\
      --ca-file ./state/pki/ca.crt --cluster east-1 --region cn-east \\
      --zone cn-east-a --address 127.0.11.1 \\
      --tls-cert ./east-1/east-1.crt --tls-key ./east-1/east-1.key
  # several API servers of one control plane (fails over between them):
  flotilla agent --server https://10.0.0.5:8443,https://10.0.0.6:8443 ...
  # as root, pods run as nobody; or as a dedicated account:
  sudo flotilla agent ... --pod-user flotilla-pods:flotilla-pods
  # a real Kubernetes cluster as the member (see docs/kubernetes.md):
  flotilla agent ... --runtime kubernetes --kubeconfig ~/.kube/east-1 --context east-1
""")
@click.option("--server", required=True, envvar="FLOTILLA_SERVER", type=SERVERS,
              metavar="URL[,URL...]",
              help=f"The control plane's API (env FLOTILLA_SERVER). {SERVER_LIST_HELP}")
@click.option("--token", envvar="FLOTILLA_TOKEN", metavar="TOKEN", help=TOKEN_HELP)
@token_file_option
@click.option("--cluster", required=True, help="This member cluster's name.")
@click.option("--region", default="", help="Region, e.g. cn-east.")
@click.option("--zone", default="", help="Zone, e.g. cn-east-a.")
@click.option("--provider", default="flotilla", show_default=True)
@click.option("--runtime", type=click.Choice(runtime_names()), default="local",
              show_default=True, help="What runs the workloads.")
@click.option("--labels", metavar="K=V,...", help="Cluster labels (for placement).")
@click.option("--nodes", type=click.IntRange(min=1), default=3, show_default=True,
              help="Virtual nodes (local runtime).")
@click.option("--node-cpu", default="4", show_default=True, help="CPU per node.")
@click.option("--node-memory", default="8Gi", show_default=True, help="Memory per node.")
@click.option("--node-pods", type=click.IntRange(min=1), default=110, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="The cluster's own loopback address; its ingress listens there.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the runtime keeps pods' state and logs "
                   "(default ./.flotilla/clusters/NAME).")
@click.option("--heartbeat-interval", type=click.FloatRange(min=0.05), default=1.0,
              show_default=True, help="Seconds between heartbeat Lease renewals.")
@click.option("--admin-listen", metavar="HOST:PORT",
              help="The agent's endpoint for pods, nodes, logs and chaos "
                   "(default ADDRESS:0, a free port).")
@click.option("--pod-user", metavar="USER[:GROUP]", envvar="FLOTILLA_POD_USER",
              help="Who the local runtime runs pods as (names or numbers). Default: "
                   "nobody when the agent is root, else the agent's own user (the only "
                   "choice then). Naming the agent's own user (e.g. root) gives pods its "
                   "privileges: only for tests and single-user machines. "
                   "Env: FLOTILLA_POD_USER.")
@click.option("--kubeconfig", type=_FILE, metavar="PATH",
              help="kubernetes runtime: the kubeconfig of the member's cluster.")
@click.option("--context", metavar="NAME",
              help="kubernetes runtime: the kubeconfig context (default: its current one).")
@click.option("--ingress", metavar="ADDRESS", default="",
              help="kubernetes runtime: where the cluster's Services are reached from "
                   "outside (spec.ingress); default: the pods' own addresses.")
@click.option("--pod-address", metavar="ADDRESS", default="",
              help="local runtime: the address pods bind to and endpoints advertise "
                   "(default 127.0.0.1); it must be inside the Cluster's "
                   "spec.addressRange.")
@tls_options
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def agent(server: tuple[str, ...], token: str | None, token_file: Path | None, cluster: str,
          region: str, zone: str, provider: str, runtime: str, labels: str | None, nodes: int,
          node_cpu: str, node_memory: str, node_pods: int, address: str, state_dir: Path | None,
          heartbeat_interval: float, admin_listen: str | None, pod_user: str | None,
          ca_file: Path | None, tls_cert: Path | None, tls_key: Path | None,
          insecure_http: bool, kubeconfig: Path | None, context: str | None, ingress: str,
          pod_address: str, verbose: bool) -> None:
    """Run the agent of one member cluster: register it, heartbeat, run its Works.

    The agent keeps running what it last applied while the control plane is away, and a
    restarted agent adopts the pods it left running instead of starting duplicates.
    """
    try:
        parse_pod_user(pod_user)
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from None
    if runtime == "kubernetes" and kubeconfig is None:
        raise CliError("--runtime kubernetes needs --kubeconfig PATH", exit_code=2)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format=f"%(asctime)s agent[{cluster}] %(levelname)s %(message)s")
    token = resolve_token(token, token_file)
    cfg = AgentConfig(
        server=format_servers(server), token=token, cluster=cluster, region=region, zone=zone,
        provider=provider, runtime=runtime, labels=parse_labels(labels), address=address,
        nodes=nodes, node_cpu=node_cpu, node_memory=node_memory, node_pods=node_pods,
        state_dir=state_dir or Path(".flotilla") / "clusters" / cluster,
        heartbeat_interval=heartbeat_interval,
        admin_listen=admin_listen or f"{address}:0", pod_user=pod_user,
        ca_file=ca_file, tls_cert=tls_cert, tls_key=tls_key, insecure_http=insecure_http,
        kubeconfig=kubeconfig, context=context, ingress=ingress, pod_address=pod_address,
    )
    serve_until_signal(functools.partial(run_agent, cfg))
