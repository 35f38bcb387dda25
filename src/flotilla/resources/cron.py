"""Cron schedules, as a CronJob's ``spec.schedule`` and a CronFederatedHPA rule's
``schedule`` write them, and their firing times (docs/batch.md, docs/autoscaling.md).

The standard five fields (minute, hour, day of month, month, day of week) as
robfig/cron's standard parser reads them (what Kubernetes' CronJob controller and
Karmada's CronFederatedHPA use): ``*``, lists, ranges, steps (``*/5``, ``1-30/2``),
month and weekday names, ``7`` for Sunday and ``?`` for ``*``; the macros ``@yearly``
(``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and ``@hourly``.
When both day fields are restricted a day matches if either does (cron's rule).
``with_seconds`` also takes a sixth, leading field of seconds (robfig's
``WithSeconds``), which CronFederatedHPA rules may use so a rule can fire within a
minute; a CronJob may not (Kubernetes refuses it). Times are wall-clock times in the
given zone; a wall time skipped by a DST change does not fire that day.

One module for both kinds because the API validates a schedule at apply time with the
same parser the controllers fire it with. Pure: times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
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
    #: (0,) unless parsed ``with_seconds``
    seconds: tuple[int, ...] = (0,)

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing strictly after ``moment`` (an aware datetime), in its zone;
        None when the schedule never fires ("30 Feb")."""
        for at in self._walk(moment, 1):
            if at > moment:
                return at
        return None

    def last_at_or_before(self, moment: datetime) -> datetime | None:
        """The latest firing at or before ``moment`` (an aware datetime)."""
        for at in self._walk(moment, -1):
            if at <= moment:
                return at
        return None

    def _walk(self, moment: datetime, step: int) -> Iterator[datetime]:
        """Firing times day by day from ``moment``'s day, forwards (step 1) or backwards;
        on that first day only from ``moment``'s hour on (or up to it)."""
        tz = moment.tzinfo
        order = (lambda xs: xs) if step > 0 else (lambda xs: tuple(reversed(xs)))
        hours, minutes, seconds = order(self.hours), order(self.minutes), order(self.seconds)
        start = moment.date()
        for offset in range(SEARCH_DAYS):
            try:
                day = start + timedelta(days=step * offset)
            except OverflowError:
                return
            if not self.fires_on(day):
                continue
            for h in hours:
                if offset == 0 and (h < moment.hour if step > 0 else h > moment.hour):
                    continue
                for m in minutes:
                    for s in seconds:
                        at = datetime(day.year, day.month, day.day, h, m, s, tzinfo=tz)
                        if _exists(at):
                            yield at


def _exists(at: datetime) -> bool:
    """False for a wall time inside a DST gap (it round-trips to another time)."""
    if at.tzinfo is None:
        return True
    return at.astimezone(UTC).astimezone(at.tzinfo).replace(tzinfo=None) == \
        at.replace(tzinfo=None)


def zone(name: str | None) -> tzinfo:
    """``timeZone``: an IANA name; none means UTC (the control plane's clock)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name!r}") from exc


def parse_schedule(text: str, *, with_seconds: bool = False) -> Schedule:
    """A `Schedule` from five cron fields (or a macro); ``with_seconds`` also accepts
    six, the first being seconds."""
    spec = MACROS.get(text.strip().lower(), text)
    fields = spec.split()
    second = "0"
    if with_seconds and len(fields) == 6:
        second, *fields = fields
    if len(fields) != 5:
        six = " (or 6 with leading seconds)" if with_seconds else ""
        raise CronError(f"{text!r}: want 5 fields{six} (minute hour day-of-month month "
                        f"day-of-week) or a macro such as @hourly, got {len(spec.split())}")
    minute, hour, dom, month, dow = fields
    weekdays = _field(dow, 0, 7, _DAYS, "day of week")
    return Schedule(
        minutes=tuple(sorted(_field(minute, 0, 59, {}, "minute"))),
        hours=tuple(sorted(_field(hour, 0, 23, {}, "hour"))),
        days=frozenset(_field(dom, 1, 31, {}, "day of month")),
        months=frozenset(_field(month, 1, 12, _MONTHS, "month")),
        weekdays=frozenset(d % 7 for d in weekdays),
        days_restricted=dom not in ("*", "?"),
        weekdays_restricted=dow not in ("*", "?"),
        seconds=tuple(sorted(_field(second, 0, 59, {}, "second"))))


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
