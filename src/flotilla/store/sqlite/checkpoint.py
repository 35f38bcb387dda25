"""WAL checkpoints off the write path.

By default SQLite checkpoints inside the COMMIT that takes the log past 1,000 pages:
that commit copies ~4 MiB into the database file and fsyncs it before it returns, and
every write queued behind it waits (measured under 400 heartbeats/s on this machine's
disk: COMMITs of up to 1.5 s every few seconds, heartbeat p99 of seconds while the
median was 10 ms). So the writer connection turns automatic checkpoints off and this
thread, on its own connection, runs a PASSIVE checkpoint every ``interval``: it copies
what it can without taking the write lock, so commits keep appending to the log (each
still fsynced: durability is unchanged) while the database file is brought up to date.
A checkpoint that falls behind only makes the log longer for a while.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

from flotilla.store.sqlite.schema import DB_FILE

log = logging.getLogger(__name__)

#: Seconds between checkpoints: at 1,000 renewals/s about 2 MiB of log each.
DEFAULT_INTERVAL = 0.5


class Checkpointer:
    def __init__(self, data_dir: Path, interval: float = DEFAULT_INTERVAL) -> None:
        self._path = data_dir / DB_FILE
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flotilla-store-checkpoint",
                                        daemon=True)
        self.checkpoints = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Blocking: run off the loop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        try:
            while not self._stop.wait(self._interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy or I/O: try again next time
                    log.warning("store checkpoint failed: %s", exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
