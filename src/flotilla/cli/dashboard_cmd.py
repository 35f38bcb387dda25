"""``flotilla dashboard``: open the live dashboard (`flotilla.dashboard`) signed in.

The token travels in the URL's fragment (``#token=...``): a browser never sends a
fragment to any server, so it reaches no access log, proxy or Referer header; the page
moves it to the tab's sessionStorage and drops it from the address bar at once. It is
still a credential on the screen and in the browser's hands, hence the warning.
"""

from __future__ import annotations

import webbrowser
from urllib.parse import quote

import click

from flotilla.cli.session import CliError, connect, connection_options

PATH = "/ui/"


def dashboard_url(server: str, token: str | None) -> str:
    """The signed-in URL of the first server of ``server`` (``URL[,URL...]``)."""
    base = server.split(",")[0].strip().rstrip("/")
    if not token:
        return base + PATH
    return f"{base}{PATH}#token={quote(token, safe='')}"


@click.command(epilog="""\b
Examples:
  flotilla dashboard                  # open it in the default browser, signed in
  flotilla dashboard --print-url      # print the signed-in URL (it holds your token)
  FLOTILLA_SERVER=https://cp.example:8443 FLOTILLA_TOKEN=... flotilla dashboard --print-url
The server's certificate is signed by the platform's CA (DATA_DIR/pki/ca.crt): import it
into the browser, or accept the warning for a local `flotilla up`. See docs/dashboard.md.
""")
@click.option("--print-url", is_flag=True,
              help="Print the URL (with the token in its #fragment) instead of opening it.")
@connection_options
def dashboard(print_url: bool, server: str | None, token: str | None) -> None:
    """Open the live dashboard of the platform, signed in with your token."""
    conn = connect(server, token)
    if not conn.token:
        raise CliError("no token for the dashboard: run in a `flotilla up` folder, or pass "
                       "--token / FLOTILLA_TOKEN")
    url = dashboard_url(conn.server, conn.token)
    click.echo("warning: this URL holds your token (in its #fragment, which browsers never "
               "send to a server); do not share or paste it anywhere.", err=True)
    if print_url:
        click.echo(url)
        return
    if not webbrowser.open(url):
        raise CliError("no browser could be started here; run 'flotilla dashboard "
                       "--print-url' and open the URL yourself")
    click.echo(f"opened {dashboard_url(conn.server, None)} in your browser", err=True)
