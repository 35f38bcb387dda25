"""Live views of member clusters, served by their agents: pods, nodes, logs.

``flotilla get pods|nodes`` and ``flotilla logs`` find each cluster's agent through the
Cluster's ``spec.apiEndpoint`` and ask it directly.
"""

from __future__ import annotations

import time
from typing import Any

import click

from flotilla.cli.config import Connection
from flotilla.cli.output import dump, echo, human_duration, table
from flotilla.cli.session import CliError, call, connect
from flotilla.client.base import ResourceClient
from flotilla.resources.kinds import by_kind
from flotilla.up.members import MemberError, agent_call

CLUSTER = by_kind("Cluster")


def _clusters(server: str | None, token: str | None,
              only: str | None) -> tuple[list[dict[str, Any]], Connection]:
    conn = connect(server, token)

    async def work(client: ResourceClient) -> list[dict[str, Any]]:
        if only:
            return [await client.get(CLUSTER, "", only)]
        return (await client.list(CLUSTER)).items

    return call(conn, work), conn


def agent_endpoint(cluster: str, server: str | None,
                   token: str | None) -> tuple[str, Connection]:
    (obj,), tok = _clusters(server, token, cluster)
    endpoint = (obj.get("spec") or {}).get("apiEndpoint")
    if not endpoint:
        raise CliError(f"cluster {cluster} publishes no agent endpoint (spec.apiEndpoint); "
                       "is its agent running?")
    return str(endpoint), tok


def member_call(endpoint: str, conn: Connection, method: str, path: str,
                params: dict[str, str] | None = None) -> Any:
    """The agent's endpoint gets the token and the CA of the connection that named it."""
    try:
        return agent_call(endpoint, conn.token, method, path, params, ca=conn.ca)
    except MemberError as exc:
        raise CliError(str(exc)) from None


def show_pods(cluster: str | None, fmt: str, server: str | None, token: str | None) -> None:
    clusters, tok = _clusters(server, token, cluster)
    rows, raw, problems = [], [], []
    now = time.time()
    for c in clusters:
        name = c["metadata"]["name"]
        endpoint = (c.get("spec") or {}).get("apiEndpoint")
        if not endpoint:
            problems.append(f"{name}: no agent endpoint")
            continue
        try:
            pods = agent_call(str(endpoint), tok.token, "GET", "/pods", timeout=3.0,
                              ca=tok.ca)
        except MemberError as exc:
            problems.append(f"{name}: {exc}")
            continue
        for p in pods:
            raw.append({"cluster": name, **p})
            ready = sum(1 for ct in p.get("containers", []) if ct.get("ready"))
            ports = ",".join(str(v) for ct in p.get("containers", [])
                             for v in (ct.get("ports") or {}).values())
            rows.append([name, p["namespace"], p["name"],
                         f"{ready}/{len(p.get('containers', []))}", p.get("status", ""),
                         str(p.get("restarts", 0)), p.get("node") or "<none>", ports,
                         human_duration(int(now - float(p.get("created") or now)))])
    if fmt in ("json", "yaml"):
        echo(dump(raw, fmt))
    else:
        table(["CLUSTER", "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "NODE",
               "PORT", "AGE"], rows)
    for p in problems:
        click.echo(f"warning: {p}", err=True)


def show_nodes(cluster: str | None, fmt: str, server: str | None, token: str | None) -> None:
    clusters, tok = _clusters(server, token, cluster)
    rows, raw = [], []
    for c in clusters:
        name = c["metadata"]["name"]
        endpoint = (c.get("spec") or {}).get("apiEndpoint")
        if not endpoint:
            continue
        try:
            nodes = agent_call(str(endpoint), tok.token, "GET", "/nodes", timeout=3.0,
                               ca=tok.ca)
        except MemberError as exc:
            click.echo(f"warning: {name}: {exc}", err=True)
            continue
        for n in nodes:
            raw.append({"cluster": name, **n})
            cap, alloc = n["capacity"], n["allocated"]
            rows.append([name, n["name"], "Ready" if n["ready"] else "NotReady",
                         f"{alloc['cpu_millis']}m/{cap['cpu_millis']}m",
                         f"{alloc['memory_bytes'] // 2**20}Mi/{cap['memory_bytes'] // 2**20}Mi",
                         f"{n['pods']}/{cap['pods']}"])
    if fmt in ("json", "yaml"):
        echo(dump(raw, fmt))
    else:
        table(["CLUSTER", "NAME", "STATUS", "CPU", "MEMORY", "PODS"], rows)
