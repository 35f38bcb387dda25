"""Where the CLI finds its server, the CA to verify it with and its credential, and the
config file `flotilla init` writes.

A *source* names a server with the CA and the token that belong to it, as one unit. In
precedence order:

1. the ``--server`` / ``--token`` / ``--ca-file`` flags (``--context NAME`` puts that
   context of the config file right here);
2. the ``FLOTILLA_SERVER`` / ``FLOTILLA_TOKEN`` / ``FLOTILLA_CA_FILE`` variables;
3. ``./.flotilla/up.json`` (written by ``flotilla up`` in the directory it runs in, so a
   demo started here is what ``flotilla get`` in the same directory talks to; it records
   ``server``, ``token`` and ``ca``);
4. the config file (``$FLOTILLA_CONFIG`` or ``~/.config/flotilla/config.yaml``): its
   ``current-context`` (or ``$FLOTILLA_CONTEXT``), kubeconfig-like::

       current-context: prod
       contexts:
       - name: prod
         server: https://10.0.0.5:8443
         certificate-authority: /etc/flotilla/ca.crt
         token-file: ~/.flotilla-prod-token        # or token: ...

   Only the selected context is a source: the other contexts' tokens are never sent.
   A context may name several replicas of one control plane instead (the client fails
   over between them, `flotilla.client.failover`)::

       - name: prod-ha
         servers: [https://10.0.0.5:8443, https://10.0.0.6:8443]
         certificate-authority: /etc/flotilla/ca.crt
         token-file: ~/.flotilla-prod-token

   (``server`` and ``servers`` together: ``server`` must be one of ``servers``.) Any
   source may name a list: ``--server URL,URL`` and ``FLOTILLA_SERVER=URL,URL`` too,
   parsed by `flotilla.client.servers.parse_servers`.

The server (or list) is the first one a source names (else the built-in default). The
token goes with it: the same source's token, else the token of the first source naming
every server used (a context listing ``servers: [a, b]`` lends its token to ``--server
b``, but a token given for ``a`` is never sent to a list holding another). A token is
never sent to a server another source named -- a ``.flotilla/up.json`` in a cloned
folder must not receive the token of the user's config file -- and a token given without
its server (``--token`` alone) is refused rather than sent to whichever server a lower
source names. A CA is public, so a CA given without a server (``--ca-file`` or
``FLOTILLA_CA_FILE`` alone) is trusted for whichever server is used; otherwise the
server's own source's CA, else that of a source naming the same server.

When up.json is used and the `up` that wrote it has stopped or died, resolving fails
with the one-line "not running" message of `flotilla.up.state`, never a bare
"connection refused".
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from flotilla.client.servers import ServerListError, format_servers, parse_servers
from flotilla.up.state import DEFAULT_DATA_DIR, UpNotRunning, require_running, up_path

DEFAULT_SERVER = "https://127.0.0.1:8443"
DEFAULT_LISTEN = "127.0.0.1:8443"
DEFAULT_CONTEXT = "default"
UP_STATE = up_path(DEFAULT_DATA_DIR)


class ConfigError(Exception):
    """A config source exists but cannot be read; the message names the file."""


@dataclass(frozen=True, slots=True)
class Connection:
    #: The server, or several as ``URL,URL`` (`flotilla.client.servers`).
    server: str
    token: str | None
    #: Where the server address came from, to say so when it cannot be reached.
    source: str
    #: Where the token came from (None: no token is sent).
    token_source: str | None = None
    #: The CA file the server is verified against (None: the system's roots).
    ca: Path | None = None
    ca_source: str | None = None

    @property
    def servers(self) -> tuple[str, ...]:
        return parse_servers(self.server)


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
        raise ConfigError(f"{path}: expected a mapping with 'contexts' and "
                          "'current-context'")
    return data


@dataclass(frozen=True, slots=True)
class Source:
    """One place that may name a server, its token and its CA, and how to name each in
    a message (``--server`` / ``--token`` / ``--ca-file``, or the file's path)."""

    server: str | None
    token: str | None
    server_from: str
    token_from: str
    ca: Path | None = None
    ca_from: str = ""


def _text(data: dict[str, Any], key: str, path: Path | str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key!r} must be a string")
    return value


def _near(path: str | None, base: Path) -> Path | None:
    """A path written in a file, relative to that file's folder (as kubeconfig does)."""
    if path is None:
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else base.parent / p


# -- the config file: contexts ----------------------------------------------------------

def read_contexts(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The contexts of the config file at ``path`` and its current context's name. A
    file of the older flat shape (``server``/``token``) reads as one context
    ``default``."""
    data = _read_mapping(path, yaml.safe_load)
    if "contexts" not in data:
        if data.get("server") or data.get("token"):
            flat = {"name": DEFAULT_CONTEXT, **{k: v for k, v in data.items()
                                                 if k != "current-context"}}
            return [flat], DEFAULT_CONTEXT
        return [], None
    contexts = data.get("contexts") or []
    if not isinstance(contexts, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"]
            for c in contexts):
        raise ConfigError(f"{path}: 'contexts' must be a list of mappings, each with a "
                          "'name'")
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        raise ConfigError(f"{path}: 'current-context' must be a string")
    return contexts, current or None


def _context_source(path: Path, name: str | None, explicit: str) -> Source | None:
    contexts, current = read_contexts(path)
    name = name or current
    if name is None:
        return None
    found = next((c for c in contexts if c["name"] == name), None)
    if found is None:
        known = ", ".join(c["name"] for c in contexts) or "none"
        raise ConfigError(f"{path}: no context {name!r}{explicit} (contexts: {known})")
    where = f"{path} (context {name})"
    token = _text(found, "token", where)
    token_file = _near(_text(found, "token-file", where), path)
    if token is None and token_file is not None:
        try:
            token = token_file.read_text().strip() or None
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read token-file {token_file}: "
                              f"{exc.strerror or exc}") from None
    ca = _near(_text(found, "certificate-authority", where), path)
    return Source(_context_servers(found, where), token, where, where, ca, where)


def _context_servers(context: dict[str, Any], where: str) -> str | None:
    """A context's ``server``, or its ``servers`` list as ``URL,URL``."""
    one = _text(context, "server", where)
    many = context.get("servers")
    if many is None or many == []:
        return one
    if not isinstance(many, list) or not all(isinstance(u, str) for u in many):
        raise ConfigError(f"{where}: 'servers' must be a list of URLs")
    try:
        listed = parse_servers(many)
    except ServerListError as exc:
        raise ConfigError(f"{where}: 'servers': {exc}") from None
    if one is not None and normalise_server(one) not in listed:
        raise ConfigError(f"{where}: 'server' {one} is not one of 'servers' "
                          f"({', '.join(listed)}); give one of them, or only 'servers'")
    return format_servers(listed)


def write_context(name: str, server: str, *, token: str | None = None,
                  token_file: Path | None = None, ca: Path | None = None,
                  path: Path | None = None, make_current: bool = True) -> Path:
    """Add (or replace) context ``name`` in the config file, mode 0600, atomically; an
    older flat file becomes its ``default`` context first."""
    path = path or config_path()
    contexts, current = read_contexts(path)
    entry: dict[str, Any] = {"name": name, "server": normalise_server(server)}
    if ca is not None:
        entry["certificate-authority"] = str(ca)
    if token_file is not None:
        entry["token-file"] = str(token_file)
    elif token is not None:
        entry["token"] = token
    contexts = [c for c in contexts if c["name"] != name] + [entry]
    data = {"current-context": name if make_current or current is None else current,
            "contexts": contexts}
    _write_private_yaml(path, data)
    return path


def use_context(name: str, path: Path | None = None) -> Path:
    path = path or config_path()
    contexts, _ = read_contexts(path)
    if not any(c["name"] == name for c in contexts):
        known = ", ".join(c["name"] for c in contexts) or "none"
        raise ConfigError(f"{path}: no context {name!r} (contexts: {known})")
    _write_private_yaml(path, {"current-context": name, "contexts": contexts})
    return path


def write_config(server: str, token: str, path: Path | None = None,
                 ca: Path | None = None) -> Path:
    """The ``default`` context with ``server``, ``token`` and ``ca``, made current."""
    return write_context(DEFAULT_CONTEXT, server, token=token, ca=ca, path=path)


def _write_private_yaml(path: Path, data: dict[str, Any]) -> None:
    """Mode 0600 from the first byte (the file holds credentials), atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = yaml.safe_dump(data, sort_keys=False)
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


# -- resolving ---------------------------------------------------------------------------

def sources(server: str | None, token: str | None, ca: Path | None = None,
            context: str | None = None) -> list[Source]:
    """Every source, in precedence order, given the flag values (None when not given)."""
    env = os.environ
    cfg = config_path()
    up = _read_mapping(UP_STATE, json.loads)
    env_ca = env.get("FLOTILLA_CA_FILE")
    chosen = context or env.get("FLOTILLA_CONTEXT") or None
    file = _context_source(cfg, chosen, " (from --context)" if context else "")
    found = [
        Source(server, token, "--server", "--token", ca, "--ca-file"),
        Source(env.get("FLOTILLA_SERVER"), env.get("FLOTILLA_TOKEN"),
               "FLOTILLA_SERVER", "FLOTILLA_TOKEN", Path(env_ca) if env_ca else None,
               "FLOTILLA_CA_FILE"),
        Source(_up_servers(up), _text(up, "token", UP_STATE),
               str(UP_STATE), str(UP_STATE), _near(_text(up, "ca", UP_STATE), UP_STATE),
               str(UP_STATE)),
    ]
    if file is not None:
        # An explicit --context is a flag: it comes right after the other flags.
        found.insert(1 if context else len(found), file)
    return [replace(s, server=_normalise_list(s.server, s.server_from) if s.server else None,
                    token=s.token or None) for s in found]


def _up_servers(up: dict[str, Any]) -> str | None:
    """up.json's server; with `up --ha`, every server (first one first) as ``URL,URL``,
    so that a CLI in that folder carries on when one is killed."""
    many = up.get("servers")
    if isinstance(many, list) and many and all(isinstance(e, dict) and
                                               isinstance(e.get("url"), str) for e in many):
        return ",".join(str(e["url"]) for e in many)
    return _text(up, "server", UP_STATE)


def _normalise_list(text: str, source: str) -> str:
    try:
        return format_servers(parse_servers(text))
    except ServerListError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def pair(found: list[Source]) -> Connection:
    """The server, the token to send it and the CA, by the rule in this module's
    docstring."""
    named = next((s for s in found if s.server), None)
    if named is None:  # no source names a server: each token is for the default one
        tokened = next((s for s in found if s.token), None)
        cad = next((s for s in found if s.ca), None)
        return Connection(DEFAULT_SERVER, tokened.token if tokened else None,
                          "the built-in default", tokened.token_from if tokened else None,
                          cad.ca if cad else None, cad.ca_from if cad else None)
    assert named.server is not None
    above = found[:found.index(named)]
    loose = next((s for s in above if s.token), None)
    if loose is not None:
        raise ConfigError(
            f"{loose.token_from} gives a token without a server, and a token is only sent "
            f"to the server named with it (the server here, {named.server}, comes from "
            f"{named.server_from}): "
            + (f"add its server to {loose.server_from}" if loose.server_from == loose.token_from
               else f"give {loose.server_from} too"))
    wanted = set(named.server.split(","))
    # A source vouches for a list only when it named every server on it itself.
    same = [s for s in found if s.server and wanted <= set(s.server.split(","))]
    cad = next((s for s in [*above, *same] if s.ca), None)
    ca, ca_from = (cad.ca, cad.ca_from) if cad else (None, None)
    if named.token:
        return Connection(named.server, named.token, named.server_from, named.token_from,
                          ca, ca_from)
    tokened = next((s for s in same if s.token), None)
    return Connection(named.server, tokened.token if tokened else None, named.server_from,
                      tokened.token_from if tokened else None, ca, ca_from)


def resolve(server: str | None, token: str | None, ca: Path | None = None,
            context: str | None = None) -> Connection:
    """The connection to use, given the flag values (None when not given)."""
    conn = pair(sources(server, token, ca, context))
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
    """Accept ``host:port`` as well as a URL, as people type both; the scheme defaults to
    https, as every Flotilla server serves it unless started with ``--insecure-http``.
    The rule is `flotilla.client.servers.normalise_server`'s; a bad one is a
    `ConfigError`."""
    from flotilla.client.servers import normalise_server as rule

    try:
        return rule(server)
    except ServerListError as exc:
        raise ConfigError(str(exc)) from None
