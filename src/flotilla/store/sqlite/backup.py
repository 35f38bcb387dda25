"""Consistent snapshots of the SQLite store: check, back up and restore.

A backup uses SQLite's online backup API from a read-only connection, so it runs while
the server serves and sees one committed state (the WAL's readers see a snapshot), with
every revision and the compaction point in it: a restored store resumes exactly where
the backup was taken. Both directions write a temporary file and rename it into place
after an fsync, so a ``kill -9`` at any moment leaves either the old file or the new one,
and never touches the live store during a backup.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flotilla.store.base import CorruptStore, StoreError
from flotilla.store.sqlite.lock import DataDirLock
from flotilla.store.sqlite.schema import DB_FILE, read_meta

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Snapshot:
    path: Path
    revision: int
    objects: int
    bytes: int


def restore_hint(data_dir: Path) -> str:
    return (f"restore a backup with `flotilla restore BACKUP --data-dir {data_dir}` "
            f"(with the server stopped), or move {data_dir / DB_FILE} away to start "
            "with an empty store")


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """SQLite's ``quick_check`` (the integrity check without the index-content pass,
    linear in the file's size): raises `CorruptStore` naming the first problem."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise CorruptStore(f"the store file {path} is damaged: {exc}") from None
    if rows != [("ok",)]:
        problems = "; ".join(str(r[0]) for r in rows[:3])
        raise CorruptStore(f"the store file {path} is damaged: {problems}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(path: Path) -> Snapshot:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check_integrity(conn, path)
        try:
            revision = read_meta(conn)["revision"]
            objects = int(conn.execute("SELECT count(*) FROM objects").fetchone()[0])
        except (sqlite3.DatabaseError, KeyError) as exc:
            raise CorruptStore(f"{path} is not a Flotilla store: {exc}") from None
    finally:
        conn.close()
    return Snapshot(path, revision, objects, path.stat().st_size)


def _copy(src: sqlite3.Connection, target: Path, progress: Progress | None) -> None:
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst, pages=256,
                       progress=(lambda _s, left, total: progress(total - left, total))
                       if progress else None)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def backup(data_dir: Path, out: Path, progress: Progress | None = None) -> Snapshot:
    """Write a consistent snapshot of the store in ``data_dir`` to ``out`` (0600)."""
    db = data_dir / DB_FILE
    if not db.exists():
        raise StoreError(f"no store in {data_dir} (no {DB_FILE})")
    if out.resolve() == db.resolve():
        raise StoreError("the backup file cannot be the store's own file")
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        check_integrity(src, db)
        _copy(src, out, progress)
    finally:
        src.close()
    return _describe(out)


def restore(backup_file: Path, data_dir: Path, progress: Progress | None = None) -> Snapshot:
    """Replace the store in ``data_dir`` with ``backup_file``. Refused while a server
    holds the data directory, and before anything is touched if the backup is damaged."""
    _describe(backup_file)  # a damaged or foreign file is refused before anything changes
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(data_dir)
    lock.acquire()  # DataDirLocked names the pid of the server still running
    try:
        src = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
        try:
            db = data_dir / DB_FILE
            # The old store's WAL must not be replayed onto the restored file.
            for leftover in (db.with_name(DB_FILE + "-wal"), db.with_name(DB_FILE + "-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            _copy(src, db, progress)
        finally:
            src.close()
    finally:
        lock.release()
    return _describe(data_dir / DB_FILE)
