"""Cron schedules as a CronJob's ``spec.schedule`` writes them (docs/batch.md).

The standard five fields (minute, hour, day of month, month, day of week) with ``*``,
lists, ranges, steps (``*/5``, ``1-30/2``), month and weekday names, ``7`` for Sunday
and ``?`` for ``*``; the macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``,
``@daily`` (``@midnight``) and ``@hourly``. As in cron (and Kubernetes), when both day
fields are restricted a day matches if either does.

Kept here, not in the controller, because the API validates a schedule at apply time
with the same parser the controller fires it with. Pure: times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Schedule", "parse_schedule", "zone"]

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
#: How far a search looks for the next (or last) firing: far enough for "29 Feb on a
#: Monday" (every 28 years), bounded so an impossible day ("30 Feb") ends the search.
SEARCH_DAYS = 366 * 29


class CronError(ValueError):
    """A schedule (or time zone) that cannot be used; the message says which part."""


@dataclass(frozen=True, slots=True)
class Schedule:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    #: 0 = Sunday
    weekdays: frozenset[int]
    #: whether each day field was restricted (cron's "either day field" rule)
    days_restricted: bool
    weekdays_restricted: bool

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing strictly after ``moment`` (an aware datetime), in its zone."""
        floor = moment.replace(second=0, microsecond=0)
        for at in self._walk(floor.date(), 1, moment.tzinfo):
            if at > moment:
                return at
        return None

    def last_at_or_before(self, moment: datetime) -> datetime | None:
        """The latest firing at or before ``moment`` (an aware datetime)."""
        for at in self._walk(moment.date(), -1, moment.tzinfo):
            if at <= moment:
                return at
        return None

    def _walk(self, start: date, step: int, tz: tzinfo | None) -> Iterator[datetime]:
        hours = self.hours if step > 0 else tuple(reversed(self.hours))
        minutes = self.minutes if step > 0 else tuple(reversed(self.minutes))
        for offset in range(SEARCH_DAYS):
            try:
                day = start + timedelta(days=step * offset)
            except OverflowError:
                return
            if not self.fires_on(day):
                continue
            for h in hours:
                for m in minutes:
                    yield datetime(day.year, day.month, day.day, h, m, tzinfo=tz)


def zone(name: str | None) -> tzinfo:
    """``spec.timeZone``: an IANA name; none means UTC (the control plane's clock)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name!r}") from exc


def parse_schedule(text: str) -> Schedule:
    spec = MACROS.get(text.strip().lower(), text)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"{text!r}: want 5 fields (minute hour day-of-month month "
                        f"day-of-week) or a macro such as @hourly, got {len(fields)}")
    minute, hour, dom, month, dow = fields
    weekdays = _field(dow, 0, 7, _DAYS, "day of week")
    return Schedule(
        minutes=tuple(sorted(_field(minute, 0, 59, {}, "minute"))),
        hours=tuple(sorted(_field(hour, 0, 23, {}, "hour"))),
        days=frozenset(_field(dom, 1, 31, {}, "day of month")),
        months=frozenset(_field(month, 1, 12, _MONTHS, "month")),
        weekdays=frozenset(d % 7 for d in weekdays),
        days_restricted=dom not in ("*", "?"),
        weekdays_restricted=dow not in ("*", "?"))


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = _number(step_text, {}, what) if slash else 1
        if step < 1:
            raise CronError(f"{what}: step must be at least 1 in {part!r}")
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, names, what), _number(b, names, what)
        else:
            first = _number(base, names, what)
            last = high if slash else first
        if not low <= first <= last <= high:
            raise CronError(f"{what}: {part!r} is outside {low}-{high} or backwards")
        out.update(range(first, last + 1, step))
    return out


def _number(text: str, names: dict[str, int], what: str) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise CronError(f"{what}: {text!r} is not a number")
    return int(text)
