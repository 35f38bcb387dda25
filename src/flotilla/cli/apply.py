"""``flotilla apply -f``: create or update every object in the given manifests."""

from __future__ import annotations

import click

from flotilla.cli.output import echo, error
from flotilla.cli.session import CliError, api_message, call, connect, connection_options
from flotilla.client.base import ApiError, ResourceClient
from flotilla.client.http import apply as apply_object


@click.command(epilog="""\b
Examples:
  flotilla apply -f shop.yaml
  flotilla apply -f manifests/ -f extra.yaml
  cat shop.yaml | flotilla apply -f -
  flotilla apply -n staging -f app.yaml
""")
@click.option("-f", "--filename", "files", multiple=True, required=True, metavar="FILE|DIR|-",
              help="Manifest file, directory of .yaml/.yml/.json files, or - for stdin. "
                   "Repeatable.")
@click.option("-n", "--namespace", metavar="NS",
              help="Namespace for objects that do not name one (default: default).")
@connection_options
def apply(files: tuple[str, ...], namespace: str | None, server: str | None,
          token: str | None) -> None:
    """Create or update the objects described in manifests.

    All documents are read and validated first: if any is invalid, nothing is applied
    and the error names the file, the document number and the field. Then each object
    is created, or updated when it differs, and reported as `kind/name created`,
    `configured` or `unchanged`.
    """
    from flotilla.cli.manifests import ManifestError, load  # imports the models: lazily

    try:
        manifests = load(files, namespace)
    except ManifestError as exc:
        raise CliError(str(exc)) from None
    conn = connect(server, token)

    async def work(client: ResourceClient) -> int:
        failures = 0
        for m in manifests:
            try:
                outcome, _ = await apply_object(client, m.obj)
            except ApiError as exc:
                if exc.status in (401, 403):
                    raise  # the same for every object: report it once
                # Keep going: the other objects are independent, and the user wants to
                # know about every one that failed, not only the first.
                failures += 1
                error(f"{m.ref}: {api_message(exc, conn)}")
                continue
            echo(f"{m.ref} {outcome}")
        return failures

    failures = call(conn, work)
    if failures:
        raise click.exceptions.Exit(1)
