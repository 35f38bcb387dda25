"""The audit trail rotates by size: it never grows past its budget, keeps the newest
entries, and ``flotilla audit`` still reads them in order across the rotated files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from flotilla.api.audit import AUDIT_FILE, AuditEntry, AuditLog, read_entries


def entry(n: int) -> AuditEntry:
    return AuditEntry(time="2026-12-03T10:00:00.000000Z", user="alice", verb="create",
                      resource="configmaps", namespace="default", name=f"cm-{n:04d}",
                      code=201, source="127.0.0.1")


def test_rotation_keeps_the_newest_entries_within_budget(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, max_bytes=2000, backups=2)
    for n in range(200):
        log.record(entry(n))
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [AUDIT_FILE, f"{AUDIT_FILE}.1", f"{AUDIT_FILE}.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 2000
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    names = [e["name"] for e in read_entries(tmp_path)]
    # in order, ending with the last one written, and the oldest rotated away
    assert names == sorted(names)
    assert names[-1] == "cm-0199"
    assert "cm-0000" not in names
    assert len(names) >= 2 * (2000 // 200)  # at least two full files' worth kept


def test_a_restarted_server_appends_and_rotates_from_the_size_on_disk(tmp_path: Path) -> None:
    AuditLog(tmp_path, max_bytes=1000, backups=1).record(entry(1))
    again = AuditLog(tmp_path, max_bytes=1000, backups=1)
    for n in range(2, 40):
        again.record(entry(n))
    again.close()
    assert (tmp_path / f"{AUDIT_FILE}.1").exists()
    assert (tmp_path / AUDIT_FILE).stat().st_size <= 1000
    assert [e["name"] for e in read_entries(tmp_path)][-1] == "cm-0039"


def test_no_audit_log_at_all_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_entries(tmp_path))
