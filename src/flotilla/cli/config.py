"""Where the CLI finds its server and token, and the config file `flotilla init` writes.

Resolution, per setting, first found wins:

1. ``--server`` / ``--token`` flags;
2. ``FLOTILLA_SERVER`` / ``FLOTILLA_TOKEN`` environment variables;
3. ``./.flotilla/up.json`` (written by ``flotilla up`` in the directory it runs in, so a
   demo started here is what ``flotilla get`` in the same directory talks to);
4. the config file: ``$FLOTILLA_CONFIG`` or ``~/.config/flotilla/config.yaml``.

Each setting is resolved on its own, as kubectl does, so ``--server`` on the command
line can be combined with the token from the config file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SERVER = "http://127.0.0.1:8443"
DEFAULT_LISTEN = "127.0.0.1:8443"
UP_STATE = Path(".flotilla") / "up.json"


class ConfigError(Exception):
    """A config source exists but cannot be read; the message names the file."""


@dataclass(frozen=True, slots=True)
class Connection:
    server: str
    token: str | None
    #: Where the server address came from, to say so when it cannot be reached.
    source: str


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


def resolve(server: str | None, token: str | None) -> Connection:
    """The connection to use, given the flag values (None when not given)."""
    env = os.environ
    up = _read_mapping(UP_STATE, json.loads)
    cfg = config_path()
    file = _read_mapping(cfg, yaml.safe_load)
    #: (where, value) per setting, in precedence order.
    layers: dict[str, list[tuple[str, Any]]] = {
        "server": [("--server", server), ("FLOTILLA_SERVER", env.get("FLOTILLA_SERVER")),
                   (str(UP_STATE), up.get("server")), (str(cfg), file.get("server"))],
        "token": [("--token", token), ("FLOTILLA_TOKEN", env.get("FLOTILLA_TOKEN")),
                  (str(UP_STATE), up.get("token")), (str(cfg), file.get("token"))],
    }

    def pick(field: str) -> tuple[str | None, str]:
        for source, value in layers[field]:
            if value:
                return str(value), source
        return None, "the built-in default"

    found_server, source = pick("server")
    found_token, _ = pick("token")
    return Connection(normalise_server(found_server or DEFAULT_SERVER), found_token, source)


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
