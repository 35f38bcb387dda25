"""One home for the rule "what is a server list": ``--server URL,URL,...``.

Every client of the API (the CLI, the agent, the gateway, DNS) may be given several
`flotilla server` replicas of one control plane (issue 15: several servers on one
etcd) and fails over between them (`flotilla.client.http.HttpClient`). They all parse
the list here, so the same text means the same servers everywhere and a mistake gets
the same clear error naming the bad item.

The rules, per item (commas separate items, blanks around them are ignored):

- ``host:port`` is accepted as well as a URL; the scheme defaults to ``https``, which
  every Flotilla server speaks unless started with ``--insecure-http`` (then the user
  writes ``http://`` on purpose, as before this list existed).
- Only ``https://`` and ``http://`` are servers; a host is required; a path, query or
  fragment is refused (a base URL with a path would silently change every request).
- A trailing ``/`` is dropped, so ``https://a:1/`` and ``https://a:1`` are the same
  server -- and the same server twice is refused: it would make a failover "move" to
  the server that just failed.
"""

from __future__ import annotations

from urllib.parse import urlsplit


class ServerListError(ValueError):
    """A server list that cannot be used; the message names the bad item."""


def normalise_server(server: str) -> str:
    """One server as the canonical base URL (``host:port`` gets ``https://``, no
    trailing ``/``); raises `ServerListError` for anything that is not a server URL."""
    text = server.strip().rstrip("/")
    if not text:
        raise ServerListError("an empty server address")
    url = text if "://" in text else "https://" + text
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ServerListError(f"{server.strip()!r} is not a URL: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise ServerListError(f"{server.strip()!r}: the scheme must be https:// (or "
                              f"http:// for a server started with --insecure-http), not "
                              f"{parts.scheme}://")
    if not parts.hostname:
        raise ServerListError(f"{server.strip()!r}: no host")
    if parts.path or parts.query or parts.fragment:
        raise ServerListError(f"{server.strip()!r}: a server is scheme://host[:port], "
                              "without a path, query or fragment")
    if parts.username or parts.password:
        raise ServerListError(f"{server.strip()!r}: no user or password in a server URL "
                              "(the token goes in --token-file / FLOTILLA_TOKEN)")
    del port  # parsed only to validate it
    return f"{parts.scheme}://{parts.netloc.lower()}"  # hosts are case-blind


def parse_servers(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The servers of ``text`` (``"URL,URL,..."`` or a list of URLs), in order, each
    normalised; `ServerListError` naming the first bad item (by position when there are
    several), an empty list or a duplicate."""
    items = text.split(",") if isinstance(text, str) else list(text)
    if not all(isinstance(item, str) for item in items):
        raise ServerListError("a server list holds URL strings")
    items = [item for item in items if item.strip()]
    if not items:
        raise ServerListError("no server given (expected URL[,URL...])")
    out: list[str] = []
    for position, item in enumerate(items, 1):
        try:
            url = normalise_server(item)
        except ServerListError as exc:
            where = f"item {position} of {len(items)}: " if len(items) > 1 else ""
            raise ServerListError(f"{where}{exc}") from None
        if url in out:
            raise ServerListError(f"{url} is listed twice (items {out.index(url) + 1} and "
                                  f"{position}); each server once")
        out.append(url)
    return tuple(out)


def format_servers(servers: tuple[str, ...] | list[str]) -> str:
    """The list as one ``--server`` value (what a child process or a message gets)."""
    return ",".join(servers)
