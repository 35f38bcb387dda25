"""``flotilla events``: what happened, to what, why -- newest last, like a log."""

from __future__ import annotations

import click

from flotilla.cli.output import age, as_list, dump, echo, note, table
from flotilla.cli.session import CliError, call, connect, connection_options
from flotilla.cli.targets import parse_targets
from flotilla.client.base import Object, ResourceClient
from flotilla.resources.kinds import Kind, by_kind
from flotilla.resources.naming import CLUSTER_EVENTS_NAMESPACE

EVENT = by_kind("Event")


def involves(event: Object, kind: Kind, namespace: str, name: str, uid: str = "") -> bool:
    """Whether ``event`` is about that object (same uid too, when both have one, so a
    re-created object does not inherit its predecessor's events)."""
    ref = event.get("involvedObject") or {}
    if ref.get("kind") != kind.kind or ref.get("name") != name:
        return False
    if kind.namespaced and (ref.get("namespace") or "") != namespace:
        return False
    return not (uid and ref.get("uid") and ref.get("uid") != uid)


def by_last_seen(events: list[Object]) -> list[Object]:
    return sorted(events, key=lambda e: (str(e.get("lastTimestamp") or ""),
                                         str((e.get("metadata") or {}).get("name") or "")))


async def events_for(client: ResourceClient, kind: Kind, namespace: str, name: str,
                     uid: str = "") -> list[Object]:
    """The Events about one object, oldest first. Cluster-scoped objects' Events live in
    the "default" namespace (`flotilla.resources.naming`)."""
    listed = await client.list(EVENT, namespace or CLUSTER_EVENTS_NAMESPACE)
    return by_last_seen([e for e in listed.items if involves(e, kind, namespace, name, uid)])


def event_rows(events: list[Object], *, wide: bool, all_namespaces: bool) \
        -> tuple[list[str], list[list[str]]]:
    headers = (["NAMESPACE"] if all_namespaces else []) + \
        ["LAST SEEN", "TYPE", "REASON", "OBJECT"] + \
        (["COUNT", "FIRST SEEN", "SOURCE"] if wide else []) + ["MESSAGE"]
    rows = []
    for e in events:
        ref = e.get("involvedObject") or {}
        row = [str((e.get("metadata") or {}).get("namespace") or "")] if all_namespaces else []
        row += [age(e.get("lastTimestamp")), str(e.get("type") or ""), str(e.get("reason") or ""),
                f"{str(ref.get('kind') or '').lower()}/{ref.get('name') or ''}"]
        if wide:
            row += [str(e.get("count") or 1), age(e.get("firstTimestamp")),
                    str((e.get("source") or {}).get("component") or "")]
        row.append(str(e.get("message") or ""))
        rows.append(row)
    return headers, rows


@click.command(epilog="""\b
Examples:
  flotilla events
  flotilla events -A
  flotilla events -n shop --for deploy/web
  flotilla events --for cluster/east -o wide
""")
@click.option("-n", "--namespace", metavar="NS", help="Namespace (default: default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Events of every namespace.")
@click.option("--for", "for_", metavar="KIND/NAME",
              help="Only events about this object, e.g. deploy/web or cluster/east.")
@click.option("-o", "--output", "fmt", type=click.Choice(("table", "wide", "yaml", "json")),
              default="table", show_default=True, help="Output format.")
@connection_options
def events(namespace: str | None, all_namespaces: bool, for_: str | None, fmt: str,
           server: str | None, token: str | None) -> None:
    """List Events, oldest first: what controllers did to which object, and why.

    Repeated identical events are folded into one line with a count (see -o wide).
    """
    target = None
    if for_ is not None:
        if "/" not in for_:
            raise CliError(f"--for wants KIND/NAME, e.g. deploy/web; got {for_!r}",
                           exit_code=2)
        target = parse_targets((for_,))[0]
    conn = connect(server, token)

    async def work(client: ResourceClient) -> None:
        ns: str | None = None if all_namespaces else (namespace or "default")
        if target is not None and not target.kind.namespaced and not all_namespaces:
            ns = CLUSTER_EVENTS_NAMESPACE  # where cluster-scoped objects' Events live
        items = (await client.list(EVENT, ns)).items
        if target is not None:
            k, name = target.kind, target.names[0]
            want_ns = (namespace or "default") if k.namespaced else ""
            items = [e for e in items if involves(e, k, want_ns, name)]
        items = by_last_seen(items)
        if fmt in ("yaml", "json"):
            echo(dump(as_list(items), fmt))
        elif not items:
            note("No events found" + ("" if ns is None else f' in namespace "{ns}"') + ".")
        else:
            headers, rows = event_rows(items, wide=fmt == "wide",
                                       all_namespaces=all_namespaces)
            table(headers, rows)

    call(conn, work)
