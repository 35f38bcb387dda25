"""``flotilla kubeconfig``: a kubeconfig for the server of the current connection, so the
unmodified ``kubectl`` drives Flotilla (docs/api.md, "Using kubectl")."""

from __future__ import annotations

from pathlib import Path

import click

from flotilla.cli.session import CliError, connect, connection_options
from flotilla.client.kubeconfig import kubeconfig, render, write_kubeconfig


@click.command(epilog="""\b
Examples:
  flotilla kubeconfig > ~/.kube/flotilla && chmod 600 ~/.kube/flotilla
  flotilla kubeconfig -o ~/.kube/flotilla        # written owner-only (0600)
  KUBECONFIG=~/.kube/flotilla kubectl get clusters
  flotilla kubeconfig --context prod --name prod -o ~/.kube/prod
The file holds your token: keep it owner-only. kubectl uses the first server of a
context with several (it does not fail over); the others are listed in a comment.
""")
@click.option("--name", default="flotilla", show_default=True,
              help="Name of the kubeconfig's cluster, user and context.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (mode 0600) instead of stdout.")
@connection_options
def kubeconfig_cmd(name: str, output: Path | None, server: str | None,
                   token: str | None) -> None:
    """Print a kubeconfig (server, CA, token) for the current connection."""
    conn = connect(server, token)
    if not conn.token:
        raise CliError("no token to put in a kubeconfig: run in a `flotilla up` folder, or "
                       "pass --token / FLOTILLA_TOKEN (see 'flotilla token create')")
    ca_pem = None
    if conn.ca is not None:
        try:
            ca_pem = conn.ca.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read the CA {conn.ca} (from {conn.ca_source}): "
                           f"{exc.strerror}") from None
    text = render(kubeconfig(conn.server, conn.token, ca_pem, name), conn.server)
    if output is None:
        click.echo(text, nl=False)
        return
    write_kubeconfig(output, text)
    click.echo(f"wrote {output} (mode 0600); use it with: export KUBECONFIG={output}",
               err=True)
