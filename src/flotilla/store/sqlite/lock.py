"""Exclusive ownership of a data directory.

Two processes writing one SQLite file would each keep their own revision counter and
lease timers, silently corrupting the revision order; so the store takes an ``flock`` on
a lock file for its whole life. The kernel drops the lock when the process dies, even by
``kill -9``, so there is no stale-lock clean-up to get wrong.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from flotilla.store.base import StoreError

LOCK_FILE = "store.lock"


class DataDirLocked(StoreError):
    """Another process (or another store in this process) holds the data directory."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirLocked(
                f"data dir {self.path.parent} is in use by pid {holder}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # Closing the descriptor releases the flock; the file stays, harmlessly.
            os.close(self._fd)
            self._fd = None
