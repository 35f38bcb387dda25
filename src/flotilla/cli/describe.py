"""``flotilla describe``: one object for a human -- metadata, spec, status, conditions and
the Events about it, which is where "why is it not working" is usually answered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import click

from flotilla.cli.config import Connection
from flotilla.cli.events import event_rows, events_for
from flotilla.cli.output import age, dump, echo, parse_time
from flotilla.cli.placement_view import placement_rows
from flotilla.cli.session import CliError, call, connect, connection_options
from flotilla.cli.targets import namespace_for, not_found, parse_targets
from flotilla.client.base import NotFoundError, Object, ResourceClient
from flotilla.resources.columns import format_cpu, format_memory
from flotilla.resources.kinds import Kind, by_kind
from flotilla.resources.views import FederatedHPAView
from flotilla.resources.wellknown import SYSTEM_NAMESPACE
from flotilla.up.members import MemberError, agent_call

#: Long specs are cut here; ``get -o yaml`` shows everything.
MAX_SECTION_LINES = 40
#: Only the newest events: describe is a summary, ``flotilla events`` is the log.
MAX_EVENTS = 20
_WIDTH = 14


def _indent(text: str, by: int = 2) -> list[str]:
    return [" " * by + line for line in text.rstrip("\n").splitlines()]


def _section(title: str, value: Any) -> list[str]:
    if value in (None, {}, []):
        return [f"{title}:".ljust(_WIDTH) + "<none>"]
    lines = _indent(dump(value, "yaml"))
    if len(lines) > MAX_SECTION_LINES:
        more = len(lines) - MAX_SECTION_LINES
        lines = [*lines[:MAX_SECTION_LINES], f"  ... ({more} more lines; see -o yaml)"]
    return [f"{title}:", *lines]


def _pairs(mapping: Any) -> str:
    if not isinstance(mapping, dict) or not mapping:
        return "<none>"
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A small fixed-width table for inside the describe text."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  " + "   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _body(obj: Object) -> dict[str, Any]:
    """What describes the desired state: ``spec``, or for spec-less kinds (ConfigMap,
    Secret, Event) their top-level fields. Secret values are never printed."""
    if "spec" in obj:
        return {"Spec": obj["spec"]}
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata",
                                                       "status")}
    if obj.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(rest.get(field), dict):
                rest[field] = {k: f"<{len(str(v))} bytes>" for k, v in rest[field].items()}
    return {k[:1].upper() + k[1:]: v for k, v in rest.items()}


# -- Cluster: the member's place, health, heartbeat, capacity and live nodes -----------


@dataclass(frozen=True, slots=True)
class ClusterLive:
    """What `describe cluster` adds from beyond the Cluster object: its heartbeat Lease
    (the renewal the health controller judges by) and its nodes, asked of the agent."""

    renew_time: str | None
    nodes: list[dict[str, Any]]
    nodes_problem: str | None


async def cluster_live(client: ResourceClient, cluster: Object, conn: Connection) \
        -> ClusterLive:
    name = str((cluster.get("metadata") or {}).get("name") or "")
    try:
        lease = await client.get(by_kind("Lease"), SYSTEM_NAMESPACE, name)
        renew = (lease.get("spec") or {}).get("renewTime")
    except NotFoundError:
        renew = None
    endpoint = (cluster.get("spec") or {}).get("apiEndpoint")
    if not endpoint:
        return ClusterLive(renew, [], "the cluster publishes no agent endpoint")
    try:  # a paused member must not hang describe: a short timeout, then say so
        nodes = await asyncio.to_thread(agent_call, str(endpoint), conn.token, "GET",
                                        "/nodes", timeout=3.0, ca=conn.ca)
    except MemberError as exc:
        return ClusterLive(renew, [], str(exc))
    return ClusterLive(renew, list(nodes), None)


def _when(value: Any) -> str:
    return f"{value} ({age(value)} ago)" if parse_time(value) else "<never>"


def _quantity(summary: Any, resource: str) -> str:
    value = summary.get(resource) if isinstance(summary, dict) else None
    if value is None:
        return "-"
    if resource == "cpu":
        return format_cpu(value)
    return format_memory(value) if resource == "memory" else str(value)


def _node_row(node: dict[str, Any]) -> list[str]:
    """One live node as the agent reports it (runtime units: millicores, bytes)."""
    cap, used = node.get("capacity") or {}, node.get("allocated") or {}

    def cpu(figures: dict[str, Any]) -> str:
        return format_cpu(f"{figures.get('cpu_millis', 0)}m")

    def memory(figures: dict[str, Any]) -> str:
        return format_memory(figures.get("memory_bytes", 0))

    return [str(node.get("name", "")), "Ready" if node.get("ready") else "NotReady",
            f"{cpu(used)}/{cpu(cap)}", f"{memory(used)}/{memory(cap)}",
            f"{node.get('pods', 0)}/{cap.get('pods', 0)}"]


def _cluster_lines(obj: Object, live: ClusterLive | None) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    taints = [f"{t.get('key')}{'=' + str(t['value']) if t.get('value') else ''}:"
              f"{t.get('effect')}" for t in spec.get("taints") or [] if isinstance(t, dict)]
    lines = [f"{label + ':':<{_WIDTH}}{value}" for label, value in (
        ("Region", spec.get("region") or "<none>"), ("Zone", spec.get("zone") or "<none>"),
        ("Provider", spec.get("provider") or "<none>"),
        ("Runtime", spec.get("runtime") or "<none>"),
        ("Version", status.get("kubernetesVersion") or "<none>"),
        ("Ingress", spec.get("ingressAddress") or "<none>"),
        ("API endpoint", spec.get("apiEndpoint") or "<none>"),
        ("Cordoned", "yes (no new placements)" if spec.get("unschedulable") else "no"),
        ("Taints", ", ".join(taints) or "<none>"),
        ("Heartbeat", _when(live.renew_time) if live else "<unknown>"),
    )]
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    if conditions:
        rows = [[str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason", "")),
                 _when(c.get("lastTransitionTime")), str(c.get("message", ""))]
                for c in conditions]
        lines += ["Conditions:", *_table(["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"],
                                         rows)]
    else:
        lines.append(f"{'Conditions:':<{_WIDTH}}<none>")
    if status.get("capacity"):
        rows = [[r, *(_quantity(status.get(f), r) for f in ("capacity", "allocatable",
                                                             "allocated"))]
                for r in ("cpu", "memory", "pods")]
        lines += ["Resources:", *_table(["RESOURCE", "CAPACITY", "ALLOCATABLE", "ALLOCATED"],
                                        rows)]
    else:
        lines.append(f"{'Resources:':<{_WIDTH}}<not reported yet>")
    summary = status.get("nodeSummary") or {}
    lines.append(f"{'Nodes:':<{_WIDTH}}{summary.get('ready', 0)}/{summary.get('total', 0)} ready"
                 if summary else f"{'Nodes:':<{_WIDTH}}<not reported yet>")
    if live and live.nodes:
        lines += _table(["NAME", "STATUS", "CPU", "MEMORY", "PODS"],
                        [_node_row(n) for n in live.nodes])
    elif live and live.nodes_problem:
        lines.append(f"  (live nodes unavailable: {live.nodes_problem})")
    return lines


def _fhpa_lines(obj: Object) -> list[str]:
    """The autoscaler's summary, as ``kubectl describe hpa`` leads with it: each metric's
    current/target, the replica counts and bounds, the last scale (the Events below
    say why)."""
    view = FederatedHPAView.of(obj)
    metrics = view.targets()
    return [
        f"{'Reference:':<{_WIDTH}}Deployment/{view.target_name}",
        f"{'Metrics:':<{_WIDTH}}{metrics[0] if metrics else '<none>'}",
        *(" " * _WIDTH + m for m in metrics[1:]),
        f"{'Replicas:':<{_WIDTH}}{view.current_replicas} current / "
        f"{view.desired_replicas} desired (min {view.min_replicas}, max {view.max_replicas})",
        f"{'Last scale:':<{_WIDTH}}{view.last_scale_time or '<never>'}",
    ]


def render(kind: Kind, obj: Object, events: list[Object],
           cluster: ClusterLive | None = None) -> str:
    meta = obj.get("metadata") or {}
    lines = [f"{'Name:':<{_WIDTH}}{meta.get('name', '')}"]
    if kind.namespaced:
        lines.append(f"{'Namespace:':<{_WIDTH}}{meta.get('namespace', '')}")
    lines += [
        f"{'Kind:':<{_WIDTH}}{kind.kind} ({obj.get('apiVersion', kind.api_version)})",
        f"{'Labels:':<{_WIDTH}}{_pairs(meta.get('labels'))}",
        f"{'Annotations:':<{_WIDTH}}{_pairs(meta.get('annotations'))}",
        f"{'Created:':<{_WIDTH}}{meta.get('creationTimestamp', '<unknown>')} "
        f"({age(meta.get('creationTimestamp'))} ago)",
    ]
    if "generation" in meta:
        lines.append(f"{'Generation:':<{_WIDTH}}{meta['generation']}")
    if meta.get("deletionTimestamp"):
        lines.append(f"{'Deleting:':<{_WIDTH}}since {meta['deletionTimestamp']}, waiting for "
                     f"finalizers {', '.join(meta.get('finalizers') or [])}")
    if kind.kind == "Cluster":
        lines += _cluster_lines(obj, cluster)
    if kind.kind == "FederatedHPA":
        lines += _fhpa_lines(obj)
    for title, value in _body(obj).items() if kind.kind != "Cluster" else ():
        lines += _section(title, value)
    status = dict(obj.get("status") or {})
    conditions = status.pop("conditions", None)
    if kind.has_status and kind.kind != "Cluster":
        lines += _section("Status", status)
        if conditions:
            rows = [[str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason", "")),
                     age(c.get("lastTransitionTime")) if parse_time(c.get("lastTransitionTime"))
                     else "", str(c.get("message", ""))]
                    for c in conditions if isinstance(c, dict)]
            lines += ["Conditions:", *_table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"],
                                             rows)]
        else:
            lines.append(f"{'Conditions:':<{_WIDTH}}<none>")
    if events:
        headers, rows = event_rows(events[-MAX_EVENTS:], wide=True, all_namespaces=False)
        lines += ["Events:", *_table(headers, rows)]
    else:
        lines.append(f"{'Events:':<{_WIDTH}}<none>")
    return "\n".join(lines)


def _with_placement(text: str, summary: list[str], headers: list[str],
                    rows: list[list[str]]) -> str:
    """Insert the placement section before the Events."""
    block = [*summary, *(_table(headers, rows) if rows else [])]
    head, sep, tail = text.rpartition("\nEvents:")
    if not sep:
        return "\n".join([text, *block])
    return "\n".join([head, *block]) + sep + tail


@click.command(epilog="""\b
Examples:
  flotilla describe cluster east
  flotilla describe deploy web -n shop
  flotilla describe rb/web-deployment deploy/web
""")
@click.argument("what", nargs=-1, required=True, metavar="KIND NAME... | KIND/NAME...")
@click.option("-n", "--namespace", metavar="NS", help="Namespace (default: default).")
@connection_options
def describe(what: tuple[str, ...], namespace: str | None, server: str | None,
             token: str | None) -> None:
    """Show objects in detail: metadata, spec, status, conditions and recent Events."""
    targets = parse_targets(what, many_kinds=False)
    if not all(t.names for t in targets):
        raise CliError("describe needs a NAME: flotilla describe KIND NAME", exit_code=2)
    conn = connect(server, token)

    async def work(client: ResourceClient) -> None:
        first = True
        for t in targets:
            ns = namespace_for(t.kind, namespace)
            for name in t.names:
                try:
                    obj = await client.get(t.kind, ns, name)
                except NotFoundError:
                    raise CliError(not_found(t.kind, ns, name)) from None
                uid = str((obj.get("metadata") or {}).get("uid") or "")
                evs = await events_for(client, t.kind, ns, name, uid)
                live = await cluster_live(client, obj, conn) \
                    if t.kind.kind == "Cluster" else None
                text = render(t.kind, obj, evs, live)
                if t.kind.kind == "Deployment":
                    text = _with_placement(text, *await placement_rows(client, obj))
                echo(("" if first else "\n") + text)
                first = False

    call(conn, work)
