"""The embedded SQLite implementation of the `Store` seam.

Layout: `store` (the class callers use), `writer` (group commit thread), `ops` (the
write operations), `reads` (read pool, list paging), `watch` (fan-out and replay),
`leases` (deadlines and expiry), `lock` (data-dir ownership), `schema` (tables).
"""

from flotilla.store.sqlite.lock import DataDirLocked
from flotilla.store.sqlite.store import SqliteStore, open_sqlite_store

__all__ = ["DataDirLocked", "SqliteStore", "open_sqlite_store"]
