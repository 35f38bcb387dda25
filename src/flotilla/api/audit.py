"""The audit trail: every write and every refused call, one JSON line each.

``<data-dir>/audit.log``, mode 0600 (it names who did what, and where from). Lines are
appended with one ``write(2)`` on an ``O_APPEND`` descriptor, so concurrent writers never
interleave within a line and a crash loses at most the line being written. Reads (get,
list, watch) that were allowed are not recorded: they are most of the traffic and
change nothing, as Kubernetes' default policies skip them too.

`read_entries` is shared by ``flotilla audit``.
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
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / AUDIT_FILE
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.fchmod(self._fd, 0o600)
        return self._fd

    def record(self, entry: AuditEntry) -> None:
        line = json.dumps(asdict(entry), separators=(",", ":")) + "\n"
        try:
            os.write(self._open(), line.encode())
        except OSError:
            log.exception("cannot append to the audit log %s", self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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
    with open(data_dir / AUDIT_FILE, encoding="utf-8") as f:
        for line in f:
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
