"""A kubeconfig for Flotilla's API: what `flotilla kubeconfig` prints and `flotilla up`
writes, so the unmodified ``kubectl`` (and client-go, the Python ``kubernetes`` client)
reach the same server with the same CA and token as the ``flotilla`` command.

One home for the document's shape, because two commands produce it. The CA goes in as
``certificate-authority-data`` (the file is self-contained, like the ones cloud
providers hand out); the token as the user's ``token``, so the file is a credential and
is only ever written owner-only (`write_kubeconfig`). kubectl talks to one server: with
several replicas (``URL,URL``) the first is used, and the others are named in a comment
line of the YAML for the reader.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from flotilla.client.servers import parse_servers


def kubeconfig(servers: str, token: str, ca_pem: bytes | None,
               name: str = "flotilla") -> dict[str, Any]:
    """The kubeconfig document: one cluster, one user and one context, all ``name``."""
    cluster: dict[str, Any] = {"server": parse_servers(servers)[0]}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def render(doc: dict[str, Any], servers: str) -> str:
    """The YAML text, with the other replicas noted (kubectl does not fail over)."""
    others = parse_servers(servers)[1:]
    head = (f"# other API servers of this control plane: {', '.join(others)}\n"
            if others else "")
    return head + yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfig(path: Path, text: str) -> None:
    """Write ``text`` owner-only (0600) from its first byte, replacing ``path`` whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
