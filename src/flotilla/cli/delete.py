"""``flotilla delete``: remove objects named on the command line or in manifests."""

from __future__ import annotations

import click

from flotilla.cli.output import echo, error
from flotilla.cli.session import CliError, api_message, call, connect, connection_options
from flotilla.cli.targets import namespace_for, not_found, parse_targets
from flotilla.client.base import ApiError, NotFoundError, ResourceClient
from flotilla.resources.kinds import Kind


@click.command(epilog="""\b
Examples:
  flotilla delete deploy web
  flotilla delete deploy/web -n shop
  flotilla delete cluster east west
  flotilla delete -f shop.yaml
""")
@click.argument("what", nargs=-1, metavar="[KIND NAME... | KIND/NAME...]")
@click.option("-f", "--filename", "files", multiple=True, metavar="FILE|DIR|-",
              help="Delete the objects described in these manifests. Repeatable.")
@click.option("-n", "--namespace", metavar="NS", help="Namespace (default: default).")
@click.option("--ignore-not-found", is_flag=True, help="Treat a missing object as deleted.")
@connection_options
def delete(what: tuple[str, ...], files: tuple[str, ...],
           namespace: str | None, ignore_not_found: bool, server: str | None,
           token: str | None) -> None:
    """Delete objects: KIND NAME..., KIND/NAME, or everything in -f manifests.

    An object held by finalizers is marked for deletion and reported as such; it goes
    away once its controllers have cleaned up.
    """
    todo: list[tuple[Kind, str, str]] = []
    if files:
        if what:
            raise CliError("give either KIND NAME or -f FILE, not both", exit_code=2)
        from flotilla.cli.manifests import ManifestError, load  # imports the models: lazily

        try:
            todo = [(m.kind, m.namespace, m.name) for m in load(files, namespace)]
        except ManifestError as exc:
            raise CliError(str(exc)) from None
    else:
        if not what:
            raise CliError("nothing to delete: give KIND NAME or -f FILE", exit_code=2)
        targets = parse_targets(what, many_kinds=False)
        if not all(t.names for t in targets):
            raise CliError(f"delete needs a NAME: flotilla delete {what[0]} NAME",
                           exit_code=2)
        todo = [(t.kind, namespace_for(t.kind, namespace), n) for t in targets
                for n in t.names]
    conn = connect(server, token)

    async def work(client: ResourceClient) -> int:
        failures = 0
        for k, ns, name in todo:
            ref = f"{k.kind.lower()}/{name}"
            try:
                left = await client.delete(k, ns, name)
            except NotFoundError:
                if not ignore_not_found:
                    failures += 1
                    error(not_found(k, ns, name))
                continue
            except ApiError as exc:
                if exc.status in (401, 403):
                    raise
                failures += 1
                error(f"{ref}: {api_message(exc, conn)}")
                continue
            pending = (left or {}).get("metadata", {}).get("deletionTimestamp")
            echo(f"{ref} marked for deletion (waiting for finalizers)" if pending
                 else f"{ref} deleted")
        return failures

    if call(conn, work):
        raise click.exceptions.Exit(1)
