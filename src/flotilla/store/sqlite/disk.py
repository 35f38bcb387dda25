"""How full the store's disk may get, and what the store says when it is.

SQLite fails a transaction cleanly on a full disk, but at that point nothing can be
written any more -- not even the deletes that would free space -- and every caller gets
an opaque error. Refusing growth a little earlier, with a reserve left, keeps the store
writable for what matters (deletes, compaction, heartbeats) and tells the user why.

The reserve must exceed what the store can still write once it is reached: the WAL grows
to about 4 MiB before SQLite checkpoints it (1,000 pages), and one batch of same-size
updates. The default leaves a wide margin; a test on a 24 MiB tmpfs with a 10 MiB reserve
shows no write reaching SQLite's own "disk full".
"""

from __future__ import annotations

import os
from pathlib import Path

#: Default free space kept on the store's file system, in bytes.
DEFAULT_DISK_RESERVE = 64 * 1024 * 1024


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


class DiskReserve:
    """``check()`` is None while the disk has more than ``reserve`` bytes free, else the
    reason writes that grow the store are refused."""

    def __init__(self, data_dir: Path, reserve: int = DEFAULT_DISK_RESERVE) -> None:
        if reserve < 0:
            raise ValueError(f"disk reserve: must be >= 0 bytes, got {reserve}")
        self.data_dir = data_dir
        self.reserve = reserve

    def free_bytes(self) -> int:
        st = os.statvfs(self.data_dir)
        return st.f_bavail * st.f_frsize

    def check(self) -> str | None:
        if self.reserve == 0:
            return None
        free = self.free_bytes()
        if free >= self.reserve:
            return None
        return (f"only {_mib(free)} free on the disk of {self.data_dir}, below the store's "
                f"reserve of {_mib(self.reserve)}; free disk space or delete objects "
                "(deletes still work)")
