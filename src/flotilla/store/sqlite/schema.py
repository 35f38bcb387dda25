"""Tables, pragmas and connections of the SQLite store.

The layout mirrors etcd's model on a single file: ``objects`` holds the latest state of
every key with its modification/creation revision and lease; ``events`` is the change
log that ``watch(since=R)`` replays, trimmed by compaction (each entry also keeps the
value it replaced, so a paged list can read the state as of its first page); ``meta``
keeps the global revision and the compaction point; ``leases`` the granted leases and
their TTLs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

DB_FILE = "store.db"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(key, value) VALUES ('revision', 0), ('compacted', 0),
    ('next_lease', 1);
CREATE TABLE IF NOT EXISTS objects (
    resource        TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    name            TEXT NOT NULL,
    mod_revision    INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    lease_id        INTEGER,
    object          TEXT NOT NULL,
    PRIMARY KEY (resource, namespace, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_lease ON objects(lease_id) WHERE lease_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    revision  INTEGER PRIMARY KEY,
    type      TEXT NOT NULL,
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    object    TEXT NOT NULL,
    prev      TEXT
);
CREATE TABLE IF NOT EXISTS leases (
    id  INTEGER PRIMARY KEY,
    ttl REAL NOT NULL
);
"""


def connect(data_dir: Path, *, writer: bool) -> sqlite3.Connection:
    """Open one connection with the durability settings every connection must share.

    ``isolation_level=None`` puts transactions under our explicit control (BEGIN/COMMIT),
    which group commit needs. ``synchronous=FULL`` in WAL mode makes every COMMIT fsync
    the log, so an acknowledged write survives ``kill -9`` and power loss alike.
    ``check_same_thread=False`` because the connection is created on the event loop
    thread and then owned by exactly one worker thread.
    """
    conn = sqlite3.connect(
        data_dir / DB_FILE, isolation_level=None, check_same_thread=False, timeout=30.0
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=OFF")
    if writer:
        conn.executescript(_DDL)
    else:
        conn.execute("PRAGMA query_only=1")
    return conn


def read_meta(conn: sqlite3.Connection) -> dict[str, int]:
    return {str(k): int(v) for k, v in conn.execute("SELECT key, value FROM meta")}
