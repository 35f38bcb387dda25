"""``<data-dir>/up.json``: where everything `flotilla up` started runs.

Written by `flotilla up` (mode 0600: it holds the admin token) and updated by
`flotilla chaos revive-cluster`; read by every CLI command started in the same folder so
that ``flotilla get clusters`` needs no flags.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

UP_FILE = "up.json"
DEFAULT_DATA_DIR = Path(".flotilla")


def up_path(data_dir: Path) -> Path:
    return data_dir / UP_FILE


def read_state(data_dir: Path) -> dict[str, Any]:
    path = up_path(data_dir)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: is 'flotilla up' running in this folder? "
            "(or pass --data-dir)") from None
    return data


def write_state(data_dir: Path, state: dict[str, Any]) -> None:
    """Atomic replace, so a reader never sees half a file."""
    path = up_path(data_dir)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write of up.json between `up` and `chaos`."""
    with open(data_dir / ".up.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cluster_entry(state: dict[str, Any], name: str) -> dict[str, Any]:
    for entry in state.get("clusters", []):
        if entry.get("name") == name:
            return dict(entry)
    known = ", ".join(c.get("name", "?") for c in state.get("clusters", []))
    raise KeyError(f"no cluster {name!r} in this 'flotilla up' (clusters: {known})")
