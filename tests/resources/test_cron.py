"""Cron schedules (`resources.cron`): robfig/cron's standard fields, next firing times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flotilla.resources.cron import CronError, parse_schedule, zone


def nxt(schedule: str, after: str, tz: str = "UTC") -> str:
    at = datetime.fromisoformat(after).replace(tzinfo=zone(tz))
    return parse_schedule(schedule).next_after(at).isoformat()


@pytest.mark.parametrize(("schedule", "after", "want"), [
    ("0 20 * * *", "2026-12-04T18:00:00", "2026-12-04T20:00:00+00:00"),  # the 20:00 sale
    ("0 20 * * *", "2026-12-04T20:00:00", "2026-12-05T20:00:00+00:00"),  # strictly after
    ("*/15 * * * *", "2026-12-04T18:07:30", "2026-12-04T18:15:00+00:00"),
    ("30 9 * * MON-FRI", "2026-12-04T10:00:00", "2026-12-07T09:30:00+00:00"),  # Fri->Mon
    ("0 0 1 JAN *", "2026-06-01T00:00:00", "2027-01-01T00:00:00+00:00"),
    ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00+00:00"),
    ("0 0 13 * 5", "2026-12-04T01:00:00", "2026-12-11T00:00:00+00:00"),  # dom OR dow
    ("0 12 * * 7", "2026-12-04T00:00:00", "2026-12-06T12:00:00+00:00"),  # 7 = Sunday
    ("1-10/3 * * * *", "2026-12-04T18:04:00", "2026-12-04T18:07:00+00:00"),
    ("@hourly", "2026-12-04T18:04:00", "2026-12-04T19:00:00+00:00"),
    ("*/10 * * * * *", "2026-12-04T18:04:01", "2026-12-04T18:04:10+00:00"),  # seconds
])
def test_next_firing(schedule: str, after: str, want: str) -> None:
    assert nxt(schedule, after) == want


def test_time_zone_and_dst_gap() -> None:
    assert nxt("0 20 * * *", "2026-12-04T18:00:00", "Asia/Shanghai") == \
        "2026-12-04T20:00:00+08:00"
    # 02:30 does not exist on 2026-03-29 in Berlin: the next one is the day after
    assert nxt("30 2 * * *", "2026-03-28T12:00:00", "Europe/Berlin") == \
        "2026-03-30T02:30:00+02:00"
    at = datetime(2026, 12, 4, 12, tzinfo=UTC).astimezone(zone("Asia/Shanghai"))
    assert parse_schedule("0 21 * * *").next_after(at).astimezone(UTC).hour == 13


@pytest.mark.parametrize(("schedule", "says"), [
    ("0 20 * *", "expected 5 fields"),
    ("61 * * * *", "minute"),
    ("0 24 * * *", "hour"),
    ("0 0 * FOO *", "month"),
    ("*/0 * * * *", "step"),
    ("0 0 31 2 *", "never fires"),
])
def test_bad_schedules_say_which_part(schedule: str, says: str) -> None:
    with pytest.raises(CronError, match=says):
        parse_schedule(schedule).next_after(datetime(2026, 1, 1, tzinfo=UTC))


def test_unknown_zone() -> None:
    with pytest.raises(CronError, match="time zone"):
        zone("Mars/Olympus")
