"""``flotilla up`` (the embedded default) and ``flotilla status``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flotilla.cli.output import echo, note, table
from flotilla.cli.session import CliError
from flotilla.client.kubeconfig import kubeconfig, render, write_kubeconfig
from flotilla.up.state import DEFAULT_DATA_DIR, UpNotRunning, require_running
from flotilla.up.supervisor import Up, UpOptions, group_state
from flotilla.up.topology import TopologyError, default_clusters, load_clusters

DEMO_DIR = Path(__file__).resolve().parents[3] / "examples" / "shop"


@click.command(epilog="""\b
Examples:
  flotilla up --demo                    # 3 clusters, gateway, DNS and the shop demo
  flotilla up --clusters 5
  flotilla up --config clusters.yaml    # name, region, zone, labels, nodes per cluster
  flotilla up --ha --clusters 2         # 3 etcd members + 3 API servers (needs etcd-server)
  flotilla up --demo --prometheus       # and Prometheus on 127.0.0.1:9090 with the alerts
Then, in another terminal in the same folder:
  flotilla status
  flotilla get clusters
  flotilla chaos kill-cluster east-1
  flotilla chaos kill-server server-2   # with --ha; also kill-etcd etcd-1, revive-...
""")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_DATA_DIR, show_default=True,
              help="SQLite store, tokens, logs and pods' state.")
@click.option("--clusters", "count", type=click.IntRange(min=1, max=200), default=3,
              show_default=True, help="How many local clusters (ignored with --config).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="clusters.yaml naming each cluster.")
@click.option("--listen", default="127.0.0.1:8443", show_default=True, metavar="HOST:PORT",
              help="The API server.")
@click.option("--gateway-listen", default="127.0.0.1:8080", show_default=True,
              metavar="HOST:PORT", help="The global gateway ('' to not start it).")
@click.option("--gateway-admin-listen", default="127.0.0.1:8081", show_default=True,
              metavar="HOST:PORT", help="The gateway's /metrics.")
@click.option("--gateway-tls-listen", default="127.0.0.1:8444", show_default=True,
              metavar="HOST:PORT", help="The gateway's HTTPS listener ('' for none).")
@click.option("--dns-listen", default="127.0.0.1:8053", show_default=True,
              metavar="HOST:PORT", help="The smart DNS ('' to not start it).")
@click.option("--dns-admin-listen", default="127.0.0.1:8054", show_default=True,
              metavar="HOST:PORT", help="The DNS's /metrics.")
@click.option("--zone", "dns_zone", default="example.test", show_default=True,
              help="The DNS zone served (global names).")
@click.option("--heartbeat-interval", type=click.FloatRange(min=0.05), default=1.0,
              show_default=True)
@click.option("--cluster-grace-period", type=click.FloatRange(min=0.1), default=3.0,
              show_default=True, help="Seconds without heartbeat before a cluster is "
              "Unknown and tainted unreachable.")
@click.option("--demo", is_flag=True, help="Apply the shop example once everything is up.")
@click.option("--ha", is_flag=True, help="A highly available control plane: three etcd "
              "members (Debian's etcd-server) and three API servers on them (server-1 on "
              "--listen, the others on free ports), every agent, the gateway and the DNS "
              "given all three. See docs/ha.md.")
@click.option("--prometheus", is_flag=True, help="Start Debian's prometheus scraping every "
              "process started here, with the alerts of deploy/prometheus/alerts.yml "
              "(see docs/observability.md).")
@click.option("--prometheus-listen", default="127.0.0.1:9090", show_default=True,
              metavar="HOST:PORT", help="Where Prometheus serves (with --prometheus).")
@click.option("--netns", is_flag=True, help="Root only: every cluster's agent, pods and "
              "ingress in a network namespace of its own, joined by a veth pair "
              "(docs/netns.md); 'flotilla chaos partition-cluster' cuts its links.")
def up(data_dir: Path, count: int, config_path: Path | None, listen: str,
       gateway_listen: str, gateway_admin_listen: str, gateway_tls_listen: str,
       dns_listen: str,
       dns_admin_listen: str, dns_zone: str, heartbeat_interval: float,
       cluster_grace_period: float, demo: bool, ha: bool, prometheus: bool,
       prometheus_listen: str, netns: bool) -> None:
    """Run a whole Flotilla on this machine until Ctrl-C: a control plane on SQLite, local
    member clusters whose pods are real processes, a global gateway and a smart DNS.

    Writes DATA_DIR/up.json (server, admin token, where everything listens; mode 0600)
    so that other flotilla commands run in the same folder need no flags. Each agent,
    the gateway and the DNS get their own restricted token in DATA_DIR/credentials/
    (0600, read with --token-file), never on a command line. Ctrl-C or SIGTERM stops
    every process it started.
    """
    try:
        plans = load_clusters(config_path) if config_path else default_clusters(count)
    except TopologyError as exc:
        raise CliError(str(exc), exit_code=2) from None
    opts = UpOptions(
        data_dir=data_dir, clusters=plans, listen=listen,
        gateway_listen=gateway_listen or None, gateway_admin_listen=gateway_admin_listen or None,
        gateway_tls_listen=gateway_tls_listen or None,
        dns_listen=dns_listen or None, dns_admin_listen=dns_admin_listen or None,
        dns_zone=dns_zone, heartbeat_interval=heartbeat_interval,
        cluster_grace_period=cluster_grace_period, ha=ha,
        prometheus_listen=prometheus_listen if prometheus else None, netns=netns,
    )
    runner = Up(opts, say=echo)
    try:
        state = runner.start()
        if demo:
            _apply_demo(state)
        _write_kubeconfig(state)
        _summary(state, opts)
        runner.wait()
    except (TimeoutError, RuntimeError, OSError) as exc:
        raise CliError(f"flotilla up: {exc}") from None
    finally:
        runner.stop()


def _apply_demo(state: dict[str, Any]) -> None:
    """Apply examples/shop, with the app's path made absolute so pods find it whatever
    folder `flotilla up` runs in."""
    from flotilla.cli.main import run

    source = DEMO_DIR / "shop.yaml"
    if not source.is_file():
        raise CliError(f"the demo files are missing: {source}")
    rendered = Path(state["dataDir"]) / "demo" / "shop.yaml"
    rendered.parent.mkdir(parents=True, exist_ok=True)
    rendered.write_text(source.read_text().replace("examples/shop/app.py",
                                                   str(DEMO_DIR / "app.py")))
    echo(f"applying the shop demo ({source})")
    # --server pairs with its own token and CA (never up.json's, which may name another
    # server), so the CA must be passed too, or the HTTPS API fails verification.
    code = run(["apply", "-f", str(rendered), "--server", state["server"],
                "--token", state["token"], "--ca-file", state["ca"]])
    if code:
        raise CliError("applying the demo failed (see above)")


def _write_kubeconfig(state: dict[str, Any]) -> None:
    """DATA_DIR/kubeconfig (0600): kubectl's way in, the admin token and up's CA."""
    servers = ",".join(s["url"] for s in state.get("servers", [])) or state["server"]
    path = Path(state["dataDir"]) / "kubeconfig"
    write_kubeconfig(path, render(kubeconfig(servers, state["token"],
                                             Path(state["ca"]).read_bytes()), servers))
    state["kubeconfig"] = str(path)


def _summary(state: dict[str, Any], opts: UpOptions) -> None:
    echo("")
    echo("Flotilla is up. Ctrl-C stops everything.")
    echo(f"  API server   {state['server']}")
    for srv in state.get("servers", [])[1:]:
        echo(f"               {srv['url']}   ({srv['name']})")
    for member in state.get("etcd", []):
        echo(f"  etcd         {member['url']}   ({member['name']})")
    if "gateway" in state:
        echo(f"  gateway      http://{state['gateway']['listen']}   "
             f"(metrics http://{opts.gateway_admin_listen}/metrics)")
        if opts.gateway_tls_listen:
            echo(f"  gateway TLS  https://{opts.gateway_tls_listen}   (TrafficPolicy "
                 f"spec.tls.secretName)")
    if "dns" in state:
        echo(f"  DNS          {state['dns']['listen']} zone {opts.dns_zone}   "
             f"(dig @{state['dns']['listen'].split(':')[0]} -p "
             f"{state['dns']['listen'].split(':')[1]} shop.{opts.dns_zone})")
    if "prometheus" in state:
        echo(f"  prometheus   {state['prometheus']['url']}   (alerts: "
             f"{state['prometheus']['url']}/alerts)")
    echo(f"  admin token  {state['token']}")
    echo(f"  state        {state['dataDir']}/up.json  (flotilla commands here use it)")
    echo(f"  kubectl      export KUBECONFIG={state['kubeconfig']}")
    echo("Try: flotilla get clusters | flotilla get deploy -o wide | flotilla status")


@click.command(epilog="Reads DATA_DIR/up.json written by 'flotilla up'.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_DATA_DIR, show_default=True)
def status(data_dir: Path) -> None:
    """Show what 'flotilla up' runs here and whether each part is alive."""
    try:
        state = require_running(data_dir)
    except (FileNotFoundError, UpNotRunning) as exc:
        raise CliError(str(exc)) from None
    note(f"API server {state['server']}  (up pid {state.get('pid')})")
    rows = []
    for c in state.get("clusters", []):
        rows.append([c["name"], c.get("region", ""), c.get("zone", ""), c.get("address", ""),
                     str(c.get("pgid", "")), group_state(int(c["pgid"]))
                     + (f", partitioned ({c['partition']})" if c.get("partition") else "")])
    for part in ("gateway", "dns"):
        if isinstance(state.get(part), dict):
            p = state[part]
            rows.append([part, "", "", p.get("listen", ""), str(p.get("pgid", "")),
                         group_state(int(p["pgid"]))])
    table(["NAME", "REGION", "ZONE", "ADDRESS", "PGID", "STATE"], rows)
    if "servers" in state or "etcd" in state:
        _control_plane(state)


def _control_plane(state: dict[str, Any]) -> None:
    """`up --ha`'s servers (GET /readyz) and etcd members (/health: has a leader and
    quorum), each with its process state."""
    from flotilla.up.ha import etcd_healthy, server_ready

    data_dir, ca = Path(state["dataDir"]), Path(state["ca"])
    rows = []
    for kind in ("servers", "etcd"):
        for entry in state.get(kind, []):
            process = group_state(int(entry["pgid"]))
            url = str(entry["url"])
            ok = server_ready(url, ca) if kind == "servers" else etcd_healthy(data_dir, url)
            health = ("healthy" if ok else "unhealthy") if process == "running" else "-"
            rows.append([entry["name"], entry["url"], str(entry["pid"]), process, health])
    echo("")
    table(["CONTROL PLANE", "URL", "PID", "STATE", "HEALTH"], rows)
