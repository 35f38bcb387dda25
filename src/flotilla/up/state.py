"""``<data-dir>/up.json``: where everything `flotilla up` started runs, and whether it
still does.

Written by `flotilla up` (mode 0600: it holds the admin token) and updated by
`flotilla chaos revive-cluster`; read by every CLI command started in the same folder so
that ``flotilla get clusters`` needs no flags.

A clean stop (Ctrl-C, SIGTERM) keeps the file and marks it ``"status": "stopped"``
rather than removing it: the next `up` in the folder reuses the token it records (the
data dir keeps only hashes), and a reader can say *why* nothing answers. A file whose
``up`` died without that word is recognised by its pid (and the pid's start time, so a
reused pid does not count as alive). Either way `why_not_running` gives the reason and
`not_running_message` the one line every command shows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

UP_FILE = "up.json"
DEFAULT_DATA_DIR = Path(".flotilla")
RUNNING, STOPPING, STOPPED = "running", "stopping", "stopped"


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


# -- is the `up` that wrote the file still running? -----------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie does not)."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, names one process
    even after the pid is reused."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def owner() -> dict[str, Any]:
    """The fields that tie a state file to the process writing it (this one)."""
    return {"status": RUNNING, "pid": os.getpid(), "pidStart": process_start(os.getpid())}


def owned_by_me(state: dict[str, Any]) -> bool:
    return state.get("pid") == os.getpid() and \
        state.get("pidStart") == process_start(os.getpid())


def why_not_running(state: dict[str, Any]) -> str | None:
    """None while the `up` that wrote ``state`` runs; else the reason, for a message.

    A file without a pid was not written by `up` (someone wrote server and token by
    hand): there is nothing to judge it by, so it counts as running."""
    status = state.get("status", RUNNING)
    if status != RUNNING:
        since = state.get("stoppedAt")
        return f"{status} at {since}" if since else str(status)
    pid = state.get("pid")
    if pid is None:
        return None
    if not isinstance(pid, int) or isinstance(pid, bool):
        return f"its pid {pid!r} is not a number"
    started = state.get("pidStart")
    if not pid_alive(pid) or (started is not None and process_start(pid) != started):
        return f"its process {pid} is gone"
    return None


def not_running_message(data_dir: Path, why: str) -> str:
    """The one line a command prints when the `up` it was pointed at does not run."""
    here = data_dir == DEFAULT_DATA_DIR
    again = "flotilla up" if here else f"flotilla up --data-dir {data_dir}"
    return (f"'flotilla up' is not running {'in this folder' if here else f'on {data_dir}'} "
            f"({why}; see {up_path(data_dir)}): start it again with '{again}'")


class UpNotRunning(RuntimeError):
    """The state file names an `up` that has stopped or died."""


def require_running(data_dir: Path) -> dict[str, Any]:
    """The state of the `up` running on ``data_dir``; `UpNotRunning` if it does not."""
    state = read_state(data_dir)
    why = why_not_running(state)
    if why is not None:
        raise UpNotRunning(not_running_message(data_dir, why))
    return state


def mark_mine(data_dir: Path, status: str) -> dict[str, Any]:
    """Record ``status`` in the state file if this process wrote it; returns that state
    ({} when the file is absent, unreadable or another `up`'s, which is left alone)."""
    with contextlib.suppress(FileNotFoundError, ValueError), locked(data_dir):
        state = read_state(data_dir)
        if not isinstance(state, dict) or not owned_by_me(state):
            return {}
        state["status"] = status
        if status != RUNNING:
            state["stoppedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_state(data_dir, state)
        return state
    return {}
