"""``flotilla describe``: one object for a human -- metadata, spec, status, conditions and
the Events about it, which is where "why is it not working" is usually answered."""

from __future__ import annotations

from typing import Any

import click

from flotilla.cli.events import event_rows, events_for
from flotilla.cli.output import age, dump, echo, parse_time
from flotilla.cli.session import CliError, call, connect, connection_options
from flotilla.cli.targets import namespace_for, not_found, parse_targets
from flotilla.client.base import NotFoundError, Object, ResourceClient
from flotilla.resources.kinds import Kind

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


def render(kind: Kind, obj: Object, events: list[Object]) -> str:
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
    for title, value in _body(obj).items():
        lines += _section(title, value)
    status = dict(obj.get("status") or {})
    conditions = status.pop("conditions", None)
    if kind.has_status:
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
                echo(("" if first else "\n") + render(t.kind, obj, evs))
                first = False

    call(conn, work)
