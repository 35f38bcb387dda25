"""Cron schedules as CronFederatedHPA rules write them, and their next firing time.

The standard five fields (minute, hour, day of month, month, day of week) as
robfig/cron's standard parser (what Karmada's CronFederatedHPA uses) reads them: ``*``,
``*/step``, ``a-b``, ``a-b/step``, lists, month and weekday names (``JAN``, ``MON``), 7
as Sunday, ``?`` for ``*``, and the descriptors ``@yearly``/``@annually``,
``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``. When both day of month
and day of week are restricted, a day matching either fires (cron's rule). A sixth,
leading field of seconds is accepted too (robfig's ``WithSeconds``), so a rule can fire
within a minute (tests, demos). Times are wall-clock times in the rule's IANA time
zone (UTC by default); a wall time skipped by a DST change does not fire that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Schedule", "parse_schedule", "zone"]

_MONTHS = {m: i + 1 for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                "@hourly": "0 * * * *"}
#: far enough to cross any valid schedule (Feb 29 on a Monday repeats within 28 years)
_HORIZON_DAYS = 366 * 29


class CronError(ValueError):
    """A schedule or time zone that cannot be read; the message says which part."""


@dataclass(frozen=True, slots=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def _day_matches(self, day: datetime) -> bool:
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, after: datetime) -> datetime:
        """The first firing time strictly after ``after`` (an aware datetime), in the
        same time zone as ``after``."""
        tz = after.tzinfo
        local = after.replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
        end = local + timedelta(days=_HORIZON_DAYS)
        while local < end:
            if local.month not in self.months:
                year, month = (local.year + 1, 1) if local.month == 12 else (
                    local.year, local.month + 1)
                local = datetime(year, month, 1)
                continue
            if not self._day_matches(local):
                local = datetime(local.year, local.month, local.day) + timedelta(days=1)
                continue
            if local.hour not in self.hours:
                local = local.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if local.minute not in self.minutes:
                local = local.replace(second=0) + timedelta(minutes=1)
                continue
            if local.second not in self.seconds:
                local += timedelta(seconds=1)
                continue
            candidate = local.replace(tzinfo=tz)
            # a wall time inside a DST gap does not exist: it round-trips elsewhere
            if tz is None or candidate.astimezone(UTC).astimezone(tz).replace(
                    tzinfo=None) == local:
                return candidate
            local += timedelta(seconds=1)
        raise CronError("the schedule never fires")


def _field(text: str, lo: int, hi: int, names: dict[str, int] | None, what: str
           ) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
        except ValueError:
            raise CronError(f"{what}: bad step {step_text!r}") from None
        if step < 1:
            raise CronError(f"{what}: step must be positive")
        if base in ("*", "?"):
            first, last = lo, hi
        else:
            a, dash, b = base.partition("-")
            first = _value(a, names, what)
            last = _value(b, names, what) if dash else (hi if step_text else first)
        if what == "day of week" and last == 7:
            last = 7  # 7 is Sunday too: folded below
        if not (lo <= first <= last <= (7 if what == "day of week" else hi)):
            raise CronError(f"{what}: {part!r} is outside {lo}-{hi}")
        out.update(v % 7 if what == "day of week" else v
                   for v in range(first, last + 1, step))
    return frozenset(out)


def _value(text: str, names: dict[str, int] | None, what: str) -> int:
    if names is not None and text.upper() in names:
        return names[text.upper()]
    try:
        return int(text)
    except ValueError:
        raise CronError(f"{what}: {text!r} is not a number") from None


def parse_schedule(text: str) -> Schedule:
    """A `Schedule` from five (or, with leading seconds, six) cron fields."""
    spec = _DESCRIPTORS.get(text.strip().lower(), text)
    fields = spec.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise CronError(f"expected 5 fields (minute hour day month weekday), got "
                        f"{len(spec.split())}: {text!r}")
    sec, minute, hour, dom, month, dow = fields
    return Schedule(
        _field(sec, 0, 59, None, "second"), _field(minute, 0, 59, None, "minute"),
        _field(hour, 0, 23, None, "hour"), _field(dom, 1, 31, None, "day of month"),
        _field(month, 1, 12, _MONTHS, "month"), _field(dow, 0, 6, _DAYS, "day of week"),
        any_day=dom in ("*", "?"), any_weekday=dow in ("*", "?"))


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone ``name`` (UTC when empty)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name!r}") from exc
