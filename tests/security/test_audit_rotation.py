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


def at(second: int, name: str) -> AuditEntry:
    return AuditEntry(time=f"2026-12-03T10:00:{second:02d}.000000Z", user="alice",
                      verb="create", resource="configmaps", namespace="default", name=name,
                      code=201, source="127.0.0.1")


def test_replicas_logs_are_merged_in_time_order_each_naming_its_server(
        tmp_path: Path) -> None:
    # `up --ha`'s layout: each replica writes its own log under servers/<name>/ (one of
    # them rotated); the main data dir may hold a log of its own from a lone server.
    one = AuditLog(tmp_path / "servers" / "server-1", max_bytes=400, backups=3,
                   server="server-1")
    two = AuditLog(tmp_path / "servers" / "server-2", server="server-2")
    for folder in ("server-1", "server-2"):
        (tmp_path / "servers" / folder).mkdir(parents=True)
    (tmp_path / "servers" / "server-3").mkdir()  # a replica that wrote nothing yet
    AuditLog(tmp_path).record(at(0, "before-ha"))
    for second in range(1, 13):
        (one if second % 3 else two).record(at(second, f"cm-{second:02d}"))
    one.close()
    two.close()
    # a line written before lines carried their server: the folder names it
    legacy = AuditLog(tmp_path / "servers" / "server-2")
    legacy.record(at(13, "cm-13"))
    legacy.close()
    assert (tmp_path / "servers" / "server-1" / f"{AUDIT_FILE}.1").exists()

    got = list(read_entries(tmp_path))
    assert [e["name"] for e in got] == ["before-ha", *(f"cm-{s:02d}" for s in range(1, 14))]
    assert [e["time"] for e in got] == sorted(e["time"] for e in got)
    servers = {e["name"]: e["server"] for e in got}
    assert servers["before-ha"] == ""
    assert servers["cm-01"] == servers["cm-02"] == "server-1"
    assert servers["cm-03"] == servers["cm-06"] == servers["cm-13"] == "server-2"
    # the filters apply to the merged trail
    assert [e["name"] for e in read_entries(tmp_path, user="bob")] == []
    line = (tmp_path / "servers" / "server-2" / AUDIT_FILE).read_text().splitlines()[0]
    assert '"server":"server-2"' in line
