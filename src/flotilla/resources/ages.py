"""Ages as kubectl shows them (45s, 3m20s, 5h3m, 3d, 2y): one home for the CLI's tables
and the API's Table responses, so both print the same AGE."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``Z`` or an offset; naive means UTC), or None."""
    if not value or not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def age(value: Any, now: datetime | None = None) -> str:
    """A timestamp as kubectl shows ages: 45s, 3m20s, 17m, 5h3m, 3d, 2y. "<unknown>" if unset."""
    ts = parse_time(value)
    if ts is None:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - ts).total_seconds())
    return human_duration(max(seconds, 0))


def human_duration(seconds: int) -> str:
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"
