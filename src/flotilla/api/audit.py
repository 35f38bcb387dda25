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
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.log"
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


def should_record(verb: str, code: int) -> bool:
    """Writes whatever their outcome, and refusals (401, 403) of anything."""
    return verb not in READ_VERBS or code in (401, 403)


class AuditLog:
    def __init__(self, data_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS) -> None:
        if max_bytes <= 0 or backups < 0:
            raise ValueError("the audit log needs max_bytes > 0 and backups >= 0")
        self.path = data_dir / AUDIT_FILE
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
    """Entries in order, newer than ``since`` seconds ago and of ``user`` if given; a
    line that is not JSON (a torn last line after a crash) is skipped."""
    cutoff = time.time() - since if since is not None else None
    current = data_dir / AUDIT_FILE
    rotated = sorted((p for p in data_dir.glob(f"{AUDIT_FILE}.*")
                      if p.suffix[1:].isdigit()), key=lambda p: -int(p.suffix[1:]))
    if not current.exists() and not rotated:
        raise FileNotFoundError(2, "no audit log", str(current))
    for path in [*rotated, current]:
        for line in _lines(path):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            if user is not None and entry.get("user") != user:
                continue
            if cutoff is not None and _parse_time(str(entry.get("time", ""))) < cutoff:
                continue
            yield entry


def _lines(path: Path) -> Iterator[str]:
    """The file's lines; none when it was rotated away while the others were read."""
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except FileNotFoundError:
        return
