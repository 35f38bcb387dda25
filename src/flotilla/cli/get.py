"""``flotilla get``: list or show objects as a table, YAML or JSON, optionally watching."""

from __future__ import annotations

from typing import Any

import click

from flotilla.cli.members import show_nodes, show_pods
from flotilla.cli.output import as_list, dump, echo, note, table
from flotilla.cli.session import CliError, call, connect, connection_options
from flotilla.cli.targets import Target, namespace_for, not_found, parse_targets
from flotilla.client.base import NotFoundError, Object, ResourceClient
from flotilla.client.rewatch import follow
from flotilla.resources import columns
from flotilla.resources.kinds import Kind

OUTPUT_FORMATS = ("table", "wide", "yaml", "json", "name")
MEMBER_VIEWS = {name: show_pods for name in ("pods", "pod", "po")} | {
    name: show_nodes for name in ("nodes", "node", "no")}


@click.command(epilog="""\b
Examples:
  flotilla get clusters
  flotilla get deploy -n shop -o wide
  flotilla get deployment web -o yaml
  flotilla get deploy/web svc/web -o json
  flotilla get deploy,svc,cm -A
  flotilla get pp -A -l team=payments
  flotilla get works -A --watch
  flotilla get pods --cluster east-1       # live, from the cluster's agent
  flotilla get nodes
  flotilla get clusters --server https://10.0.0.5:8443,https://10.0.0.6:8443  # fails over
""")
@click.argument("what", nargs=-1, required=True, metavar="KIND[,KIND...] [NAME...] | KIND/NAME...")
@click.option("-o", "--output", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table",
              show_default=True, help="Output format.")
@click.option("-n", "--namespace", metavar="NS", help="Namespace (default: default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-l", "--selector", metavar="SELECTOR",
              help="Label selector, e.g. 'app=web,tier in (front,back),!canary'.")
@click.option("-w", "--watch", is_flag=True,
              help="After listing, keep printing changes until interrupted (one KIND).")
@click.option("--cluster", metavar="NAME",
              help="For pods and nodes: only this member cluster (default: all).")
@connection_options
def get(what: tuple[str, ...], fmt: str, namespace: str | None, all_namespaces: bool,
        selector: str | None, watch: bool, cluster: str | None, server: str | None,
        token: str | None) -> None:
    """Show objects: KIND is a plural, singular or short name (deployments, deploy, ...).

    With NAMEs (or KIND/NAME), shows just those objects; otherwise lists every object of
    each KIND in the namespace, or everywhere with -A, optionally filtered by -l.
    """
    if what[0].lower() in MEMBER_VIEWS:
        # Pods and nodes live in member clusters; their agents serve them live.
        MEMBER_VIEWS[what[0].lower()](cluster, fmt, server, token)
        return
    targets = parse_targets(what)
    named = any(t.names for t in targets)
    if named and (all_namespaces or selector or watch):
        raise CliError("named objects cannot be combined with -A, -l or --watch", exit_code=2)
    if watch and len(targets) > 1:
        raise CliError("--watch follows one KIND at a time", exit_code=2)
    conn = connect(server, token)
    prefix = len(targets) > 1

    async def work(client: ResourceClient) -> None:
        found: list[tuple[Kind, list[Object]]] = []
        rv = ""
        for t in targets:
            if named:
                found.append((t.kind, await _get_named(client, t, namespace)))
            else:
                ns = _list_namespace(t.kind, namespace, all_namespaces)
                listed = await client.list(t.kind, ns, selector=selector)
                found.append((t.kind, listed.items))
                rv = listed.resource_version
        if fmt in ("table", "wide"):  # columns that need other objects: one call per kind
            async def lister(kind: Kind, ns: str | None) -> list[Object]:
                return (await client.list(kind, ns)).items
            found = [(k, await columns.enrich(k.kind, lister, objs)) for k, objs in found]
        _print(found, fmt, all_namespaces=all_namespaces and not named, named=named,
               prefix=prefix, namespace=namespace, quiet_empty=watch)
        if watch:
            k = targets[0].kind
            await _follow(client, k, _list_namespace(k, namespace, all_namespaces), selector,
                          rv, fmt, all_namespaces and k.namespaced)

    call(conn, work)


def _list_namespace(kind: Kind, namespace: str | None, all_namespaces: bool) -> str | None:
    return None if all_namespaces and kind.namespaced else namespace_for(kind, namespace)


async def _get_named(client: ResourceClient, target: Target, namespace: str | None) \
        -> list[Object]:
    ns = namespace_for(target.kind, namespace)
    out = []
    for name in target.names:
        try:
            out.append(await client.get(target.kind, ns, name))
        except NotFoundError:
            raise CliError(not_found(target.kind, ns, name)) from None
    return out


def _print(found: list[tuple[Kind, list[Object]]], fmt: str, *, all_namespaces: bool,
           named: bool, prefix: bool, namespace: str | None, quiet_empty: bool) -> None:
    everything = [o for _, objs in found for o in objs]
    if fmt in ("yaml", "json"):
        bare = named and len(everything) == 1
        echo(dump(everything[0] if bare else as_list(everything), fmt))
        return
    if fmt == "name":
        for k, objs in found:
            for o in objs:
                echo(f"{k.kind.lower()}/{o['metadata']['name']}")
        return
    printed = 0
    for k, objs in found:
        if not objs:
            continue
        headers, rows = columns.rows(
            k.kind, objs, wide=fmt == "wide", all_namespaces=all_namespaces and k.namespaced,
            name_prefix=f"{k.kind.lower()}/" if prefix else "")
        if printed:
            echo("")
        table(headers, rows)
        printed += 1
    if not printed and not quiet_empty:
        where = " in any namespace" if all_namespaces else \
            f' in namespace "{namespace or "default"}"'
        kinds = ", ".join(k.plural for k, _ in found)
        note(f"No {kinds} found" + (where if any(k.namespaced for k, _ in found) else "") + ".")


async def _follow(client: ResourceClient, kind: Kind, ns: str | None, selector: str | None,
                  rv: str, fmt: str, show_ns: bool) -> None:
    """Print each change as a row (or document) as it happens; Ctrl-C ends it."""
    async for event in follow(client, kind, ns, resource_version=rv, selector=selector):
        if event.type == "BOOKMARK":
            continue
        obj: dict[str, Any] = event.object
        if fmt in ("yaml", "json"):
            echo(("---\n" if fmt == "yaml" else "") + dump(obj, fmt).rstrip("\n"))
        elif fmt == "name":
            echo(f"{kind.kind.lower()}/{obj['metadata']['name']} {event.type.lower()}")
        else:
            _, rows = columns.rows(kind.kind, [obj], wide=fmt == "wide", all_namespaces=show_ns)
            suffix = "   (deleted)" if event.type == "DELETED" else ""
            echo("   ".join(rows[0]) + suffix)
