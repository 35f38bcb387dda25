"""The audit trail: every write and every refused call, one JSON line each.

``<data-dir>/audit.log``, mode 0600 (it names who did what, and where from). Lines are
appended with one ``write(2)`` on an ``O_APPEND`` descriptor, so concurrent writers never
interleave within a line and a crash loses at most the line being written. Reads (get,
list, watch) that were allowed are not recorded: they are most of the traffic and
change nothing, as Kubernetes' default policies skip them too.

The file is rotated by size, as kube-apiserver's ``--audit-log-maxsize`` and
``--audit-log-maxbackup`` do: past ``max_bytes`` it becomes ``audit.log.1`` (the older
ones shift up, the oldest beyond ``backups`` is deleted) and a fresh ``audit.log`` starts,
so the trail can never fill the disk the store lives on. `read_entries` (shared by
``flotilla audit``) reads the kept files oldest first.

Several replicas of one control plane (``flotilla up --ha``) each write their own log in
their own data dir, ``<data-dir>/servers/<name>/audit.log``: one file per writer keeps
the single-``write(2)`` rule without a lock shared across processes. Each line names
the server that wrote it (``server``, its ``--name``), and `read_entries` on the main
data dir merges every replica's log with the main one in time order, so one
``flotilla audit`` shows the whole control plane's trail.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.log"
#: Where ``flotilla up --ha`` keeps each replica's own data dir (``servers/<name>/``):
#: `read_entries` looks there for the replicas' logs.
SERVERS_DIR = "servers"
#: Rotation defaults: 100 MiB a file, 5 rotated files kept (600 MiB at most in all).
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time: str
    user: str
    verb: str
    resource: str
    namespace: str
    name: str
    code: int
    source: str
    message: str = ""
    #: The server that answered (``flotilla server --name``); "" for a lone server.
    server: str = ""


def should_record(verb: str, code: int) -> bool:
    """Writes whatever their outcome, and refusals (401, 403) of anything."""
    return verb not in READ_VERBS or code in (401, 403)


class AuditLog:
    def __init__(self, data_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS, server: str = "") -> None:
        """``server``: this replica's name, written on every line it records."""
        if max_bytes <= 0 or backups < 0:
            raise ValueError("the audit log needs max_bytes > 0 and backups >= 0")
        self.path = data_dir / AUDIT_FILE
        self.server = server
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.fchmod(self._fd, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _rotate(self) -> None:
        """audit.log -> audit.log.1 -> ... -> audit.log.<backups>; the oldest goes."""
        self.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        rotated_path(self.path, self.backups).unlink(missing_ok=True)
        for n in range(self.backups - 1, 0, -1):
            older = rotated_path(self.path, n)
            if older.exists():
                older.rename(rotated_path(self.path, n + 1))
        if self.path.exists():
            self.path.rename(rotated_path(self.path, 1))

    def record(self, entry: AuditEntry) -> None:
        if self.server and not entry.server:
            entry = replace(entry, server=self.server)
        line = (json.dumps(asdict(entry), separators=(",", ":")) + "\n").encode()
        try:
            fd = self._open()
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
                fd = self._open()
            os.write(fd, line)
            self._size += len(line)
        except OSError:
            log.exception("cannot append to the audit log %s", self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def rotated_path(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> float:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def read_entries(data_dir: Path, *, since: float | None = None,
                 user: str | None = None) -> Iterator[dict[str, Any]]:
    """Entries in time order, newer than ``since`` seconds ago and of ``user`` if given,
    from the data dir's own log and every replica's under ``servers/<name>/``; a line
    that is not JSON (a torn last line after a crash) is skipped. Every entry has a
    ``server``: the one it names, else the replica folder's name it was read from ("" for
    the main data dir's own log)."""
    cutoff = time.time() - since if since is not None else None
    sources = [(data_dir, "")]
    servers = data_dir / SERVERS_DIR
    if servers.is_dir():
        sources += [(folder, folder.name) for folder in sorted(servers.iterdir())
                    if folder.is_dir()]
    logs = [(folder, name, files) for folder, name in sources
            if (files := _log_files(folder))]
    if not logs:
        raise FileNotFoundError(2, "no audit log", str(data_dir / AUDIT_FILE))
    # Each file is in time order (one writer appending); the merge keeps that across them.
    # The times are fixed-width ISO strings, so they sort as text.
    merged = heapq.merge(*(_entries(files, name) for _folder, name, files in logs),
                         key=lambda e: str(e.get("time", "")))
    for entry in merged:
        if user is not None and entry.get("user") != user:
            continue
        if cutoff is not None and _parse_time(str(entry.get("time", ""))) < cutoff:
            continue
        yield entry


def _log_files(folder: Path) -> list[Path]:
    """``folder``'s audit log with its rotated files, oldest first ([] when none)."""
    current = folder / AUDIT_FILE
    rotated = sorted((p for p in folder.glob(f"{AUDIT_FILE}.*") if p.suffix[1:].isdigit()),
                     key=lambda p: -int(p.suffix[1:]))
    return [*rotated, current] if rotated or current.exists() else []


def _entries(files: list[Path], server: str) -> Iterator[dict[str, Any]]:
    """The JSON entries of one writer's files, each naming its server."""
    for path in files:
        for line in _lines(path):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                if not entry.get("server"):
                    entry["server"] = server
                yield entry


def _lines(path: Path) -> Iterator[str]:
    """The file's lines; none when it was rotated away while the others were read."""
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except FileNotFoundError:
        return
