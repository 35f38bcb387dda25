"""``flotilla what-if``: what failover would do if clusters died, without doing it.

Reads clusters, bindings, TrafficPolicies and EndpointSlices once, runs the same
scheduler the control plane runs over a view in which the named clusters are dead
(`flotilla.scheduler.whatif`), and prints per workload where its replicas
would go, which would stay unplaced and why, and which traffic would have no endpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from flotilla.cli.output import dump, echo, table
from flotilla.cli.session import CliError, call, connect, connection_options
from flotilla.client.base import ResourceClient
from flotilla.resources.kinds import by_kind
from flotilla.scheduler.whatif import Report, what_if


def _split(split: dict[str, int]) -> str:
    return ", ".join(f"{n}:{r}" for n, r in sorted(split.items()) if r) or "-"


def _as_dict(report: Report) -> dict[str, Any]:
    out = dataclasses.asdict(report)
    for w, item in zip(report.workloads, out["workloads"], strict=True):
        item["unplaced"] = w.unplaced
    for t, item in zip(report.traffic, out["traffic"], strict=True):
        item["losesAllEndpoints"] = t.loses_all
    return out


def render(report: Report) -> None:
    echo(f"If {', '.join(report.failed)} failed:")
    rows = [[w.binding, _split(dict(w.before)), _split(dict(w.after)), str(w.unplaced),
             w.problem or ""] for w in report.workloads]
    table(["BINDING", "NOW", "AFTER FAILOVER", "UNPLACED", "PROBLEM"], rows)
    for w in report.workloads:
        if w.unplaced:
            echo(f"\n{w.binding}: {w.unplaced} replica(s) would have nowhere to go:")
            for cluster, why in sorted(w.reasons.items()):
                echo(f"  {cluster}: {why}")
    if report.traffic:
        echo("")
        table(["TRAFFIC POLICY", "SERVICE", "ENDPOINTS NOW", "LEFT", "REBUILT ON"],
              [[t.policy, t.service, str(t.endpoints_before), str(t.endpoints_left)
                + (" (loses all)" if t.loses_all else ""), ", ".join(t.rebuilt_on) or "-"]
               for t in report.traffic])


@click.command("what-if", epilog="""\b
Examples:
  flotilla what-if --fail-cluster east-1
  flotilla what-if --fail-cluster east-1 --fail-cluster south-1 -o yaml
""")
@click.option("--fail-cluster", "failed", multiple=True, required=True, metavar="NAME",
              help="A cluster to imagine dead (repeat for several).")
@click.option("-o", "--output", "fmt", type=click.Choice(("table", "yaml", "json")),
              default="table", show_default=True, help="Output format.")
@connection_options
def what_if_cmd(failed: tuple[str, ...], fmt: str, server: str | None,
                token: str | None) -> None:
    """Show where replicas would go if clusters failed. Changes nothing.

    For every workload: its split now and after failover, replicas left unplaced
    (capacity or data residency) with the scheduler's reason per cluster; for every
    TrafficPolicy: endpoints left until the replicas are rebuilt.
    """
    conn = connect(server, token)

    async def work(client: ResourceClient) -> Report:
        clusters = (await client.list(by_kind("Cluster"), None)).items
        names = {c["metadata"]["name"] for c in clusters}
        unknown = sorted(set(failed) - names)
        if unknown:
            raise CliError(f"no such cluster: {', '.join(unknown)} "
                           f"(clusters: {', '.join(sorted(names)) or 'none'})", exit_code=2)
        bindings = (await client.list(by_kind("ResourceBinding"), None)).items
        policies = (await client.list(by_kind("TrafficPolicy"), None)).items
        slices = (await client.list(by_kind("EndpointSlice"), None)).items
        return what_if(failed, clusters, bindings, policies, slices)

    report = call(conn, work)
    if fmt == "table":
        render(report)
    else:
        echo(dump(_as_dict(report), fmt))
