"""Cron schedules (`flotilla.resources.cron`): fields, macros, the either-day rule, the
next and the last firing around a moment, seconds for CronFederatedHPA rules, time zones
and DST gaps, and errors that say which part."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flotilla.resources.cron import CronError, parse_schedule, zone


def at(text: str, tz: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone(tz))


@pytest.mark.parametrize(("schedule", "after", "want"), [
    ("* * * * *", "2026-12-04T18:00:30", "2026-12-04T18:01:00"),
    ("* * * * *", "2026-12-04T18:01:00", "2026-12-04T18:02:00"),  # strictly after
    ("*/15 * * * *", "2026-12-04T18:01:00", "2026-12-04T18:15:00"),
    ("5 4 * * *", "2026-12-04T18:01:00", "2026-12-05T04:05:00"),
    ("0 0 1 * *", "2026-12-04T18:01:00", "2027-01-01T00:00:00"),
    ("@hourly", "2026-12-04T18:01:00", "2026-12-04T19:00:00"),
    ("@weekly", "2026-12-04T18:01:00", "2026-12-06T00:00:00"),  # 6 Dec 2026 is a Sunday
    ("0 9 * * mon-fri", "2026-12-05T10:00:00", "2026-12-07T09:00:00"),
    ("0 0 * * 7", "2026-12-04T18:01:00", "2026-12-06T00:00:00"),  # 7 is Sunday too
    ("0 0 13 * 5", "2026-12-04T18:01:00", "2026-12-11T00:00:00"),  # Friday OR the 13th
    ("0 0 29 feb *", "2026-12-04T18:01:00", "2028-02-29T00:00:00"),
    ("30 1-5/2 * * ?", "2026-12-04T02:00:00", "2026-12-04T03:30:00"),
])
def test_next_after(schedule: str, after: str, want: str) -> None:
    assert parse_schedule(schedule).next_after(at(after)) == at(want)


def test_last_at_or_before_is_the_latest_missed_run() -> None:
    every5 = parse_schedule("*/5 * * * *")
    assert every5.last_at_or_before(at("2026-12-04T18:07:59")) == at("2026-12-04T18:05:00")
    assert every5.last_at_or_before(at("2026-12-04T18:05:00")) == at("2026-12-04T18:05:00")
    assert parse_schedule("0 0 1 1 *").last_at_or_before(at("2026-12-04T00:00:00")) == \
        at("2026-01-01T00:00:00")


def test_a_time_zone_moves_the_firing() -> None:
    nine = parse_schedule("0 9 * * *")
    tokyo = nine.next_after(datetime(2026, 12, 4, 0, 30, tzinfo=UTC).astimezone(
        zone("Asia/Tokyo")))
    assert tokyo is not None
    assert tokyo.astimezone(UTC) == datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


def test_an_impossible_day_never_fires() -> None:
    assert parse_schedule("0 0 30 2 *").next_after(at("2026-12-04T00:00:00")) is None


@pytest.mark.parametrize(("schedule", "part"), [
    ("* * * *", "want 5 fields"),
    ("60 * * * *", "minute"),
    ("* 24 * * *", "hour"),
    ("* * 0 * *", "day of month"),
    ("* * * 13 *", "month"),
    ("* * * * 8", "day of week"),
    ("*/0 * * * *", "step"),
    ("5-1 * * * *", "backwards"),
    ("x * * * *", "not a number"),
])
def test_errors_name_the_field(schedule: str, part: str) -> None:
    with pytest.raises(CronError, match=part):
        parse_schedule(schedule)


def test_an_unknown_zone_is_an_error() -> None:
    with pytest.raises(CronError, match="Mars/Olympus"):
        zone("Mars/Olympus")


@pytest.mark.parametrize(("schedule", "after", "want"), [
    ("0 20 * * *", "2026-12-04T18:00:00", "2026-12-04T20:00:00"),  # the 20:00 sale
    ("0 20 * * *", "2026-12-04T20:00:00", "2026-12-05T20:00:00"),  # strictly after
    ("*/10 * * * * *", "2026-12-04T18:04:01", "2026-12-04T18:04:10"),
    ("30 */10 * * * *", "2026-12-04T18:04:01", "2026-12-04T18:10:30"),
    ("0 0 20 * * *", "2026-12-04T20:00:00", "2026-12-05T20:00:00"),
])
def test_seconds_for_cron_federated_hpa_rules(schedule: str, after: str, want: str) -> None:
    assert parse_schedule(schedule, with_seconds=True).next_after(at(after)) == at(want)


def test_a_cronjob_schedule_has_no_seconds() -> None:
    with pytest.raises(CronError, match="want 5 fields"):
        parse_schedule("*/10 * * * * *")
    with pytest.raises(CronError, match="second"):
        parse_schedule("61 * * * * *", with_seconds=True)


def test_a_wall_time_in_a_dst_gap_does_not_fire_that_day() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: the next one is the day after
    berlin = parse_schedule("30 2 * * *").next_after(at("2026-03-28T12:00:00",
                                                        "Europe/Berlin"))
    assert berlin is not None
    assert berlin.isoformat() == "2026-03-30T02:30:00+02:00"
    shanghai = parse_schedule("0 21 * * *").next_after(
        datetime(2026, 12, 4, 12, tzinfo=UTC).astimezone(zone("Asia/Shanghai")))
    assert shanghai is not None
    assert shanghai.astimezone(UTC).hour == 13
