"""Where the CLI finds its server and token, and the config file `flotilla init` writes.

A *source* names a server and the token for it, as a pair. In precedence order:

1. the ``--server`` / ``--token`` flags;
2. the ``FLOTILLA_SERVER`` / ``FLOTILLA_TOKEN`` environment variables;
3. ``./.flotilla/up.json`` (written by ``flotilla up`` in the directory it runs in, so a
   demo started here is what ``flotilla get`` in the same directory talks to);
4. the config file: ``$FLOTILLA_CONFIG`` or ``~/.config/flotilla/config.yaml``.

The server is the first one a source names (else the built-in default). The token goes
with it: the same source's token, else the token of the first source naming the *same*
server. A token is never sent to a server another source named -- a ``.flotilla/up.json``
in a cloned folder must not receive the token of the user's config file -- and a token
given without its server (``--token`` alone) is refused rather than sent to whichever
server a lower source names. (A later context-based config keeps this unit: a server
with its credential.)

When up.json is used and the `up` that wrote it has stopped or died, resolving fails
with the one-line "not running" message of `flotilla.up.state`, never a bare
"connection refused".
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flotilla.up.state import DEFAULT_DATA_DIR, UpNotRunning, require_running, up_path

DEFAULT_SERVER = "http://127.0.0.1:8443"
DEFAULT_LISTEN = "127.0.0.1:8443"
UP_STATE = up_path(DEFAULT_DATA_DIR)


class ConfigError(Exception):
    """A config source exists but cannot be read; the message names the file."""


@dataclass(frozen=True, slots=True)
class Connection:
    server: str
    token: str | None
    #: Where the server address came from, to say so when it cannot be reached.
    source: str
    #: Where the token came from (None: no token is sent).
    token_source: str | None = None


def config_path() -> Path:
    env = os.environ.get("FLOTILLA_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "flotilla" / "config.yaml"


def _read_mapping(path: Path, parse: Any) -> dict[str, Any]:
    try:
        data = parse(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'server' and 'token'")
    return data


@dataclass(frozen=True, slots=True)
class Source:
    """One place that may name a server and its token, and how to name each in a message
    (``--server`` / ``--token``, or the file's path for both)."""

    server: str | None
    token: str | None
    server_from: str
    token_from: str


def sources(server: str | None, token: str | None) -> list[Source]:
    """Every source, in precedence order, given the flag values (None when not given)."""
    env = os.environ
    cfg = config_path()
    up = _read_mapping(UP_STATE, json.loads)
    file = _read_mapping(cfg, yaml.safe_load)
    found = [
        Source(server, token, "--server", "--token"),
        Source(env.get("FLOTILLA_SERVER"), env.get("FLOTILLA_TOKEN"),
               "FLOTILLA_SERVER", "FLOTILLA_TOKEN"),
        Source(_text(up, "server", UP_STATE), _text(up, "token", UP_STATE),
               str(UP_STATE), str(UP_STATE)),
        Source(_text(file, "server", cfg), _text(file, "token", cfg), str(cfg), str(cfg)),
    ]
    return [Source(normalise_server(s.server) if s.server else None, s.token or None,
                   s.server_from, s.token_from) for s in found]


def _text(data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key!r} must be a string")
    return value


def pair(found: list[Source]) -> Connection:
    """The server and the token to send it, by the rule in this module's docstring."""
    named = next((s for s in found if s.server), None)
    if named is None:  # no source names a server: each token is for the default one
        tokened = next((s for s in found if s.token), None)
        return Connection(DEFAULT_SERVER, tokened.token if tokened else None,
                          "the built-in default", tokened.token_from if tokened else None)
    assert named.server is not None
    loose = next((s for s in found[:found.index(named)] if s.token), None)
    if loose is not None:
        raise ConfigError(
            f"{loose.token_from} gives a token without a server, and a token is only sent "
            f"to the server named with it (the server here, {named.server}, comes from "
            f"{named.server_from}): "
            + (f"add its server to {loose.server_from}" if loose.server_from == loose.token_from
               else f"give {loose.server_from} too"))
    if named.token:
        return Connection(named.server, named.token, named.server_from, named.token_from)
    same = next((s for s in found if s.token and s.server == named.server), None)
    return Connection(named.server, same.token if same else None, named.server_from,
                      same.token_from if same else None)


def resolve(server: str | None, token: str | None) -> Connection:
    """The connection to use, given the flag values (None when not given)."""
    conn = pair(sources(server, token))
    if str(UP_STATE) in (conn.source, conn.token_source):
        _require_up_running()
    return conn


def _require_up_running() -> None:
    try:
        require_running(DEFAULT_DATA_DIR)
    except UpNotRunning as exc:
        raise ConfigError(f"{exc}, or point --server at another server") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {UP_STATE}: {exc}") from None


def normalise_server(server: str) -> str:
    """Accept ``host:port`` as well as a URL, as people type both."""
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "http://" + server
    return server


def write_config(server: str, token: str, path: Path | None = None) -> Path:
    """Write the client config with mode 0600 (it holds a credential), atomically."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = yaml.safe_dump({"server": normalise_server(server), "token": token},
                          sort_keys=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
