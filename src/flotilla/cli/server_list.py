"""``--server URL[,URL...]`` for every command: the click face of
`flotilla.client.servers.parse_servers` (the one home of the rule), so a bad list is a
usage error (exit 2) naming the bad item, the same for the CLI, agent, gateway and DNS."""

from __future__ import annotations

from typing import Any

import click

from flotilla.client.servers import ServerListError, parse_servers

SERVER_LIST_HELP = ("One API server, or several replicas of one control plane separated "
                    "by commas (e.g. https://10.0.0.5:8443,https://10.0.0.6:8443): the "
                    "client sticks to one and moves to the next when it fails.")


class ServerList(click.ParamType):  # type: ignore[type-arg]
    """A click type giving a tuple of normalised server URLs."""

    name = "URL[,URL...]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_servers(str(value))
        except ServerListError as exc:
            self.fail(str(exc), param, ctx)


SERVERS = ServerList()
