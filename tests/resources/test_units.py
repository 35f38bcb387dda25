"""Durations, quantities and int-or-percent values parse the way Go and Kubernetes do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla.resources.models import (
    format_duration,
    parse_duration,
    scaled_int_or_percent,
)
from flotilla.resources.quantity import cpu_millis, memory_bytes


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5h", 5400.0), ("2h45m", 9900.0),
     ("0", 0.0), ("0s", 0.0), ("250us", 0.00025), ("100ns", 1e-7), (".5s", 0.5),
     ("1h0m0.5s", 3600.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "-1s", "1 s", "1sec", "s", "1d", "1m30", "abc"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (1, "1s"), (90, "1m30s"), (3600, "1h0m0s"), (1.25, "1.25s"),
     (119.99999999, "2m0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**7))
def test_duration_round_trip_in_milliseconds(ms: int) -> None:
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


@pytest.mark.parametrize(
    ("value", "cores"),
    [("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("2000m", 2.0), (1, 1.0), (0.25, 0.25),
     ("100m", 0.1), ("1k", 1000.0)],
)
def test_cpu(value: str | float, cores: float) -> None:
    assert cpu_millis(value) == round(cores * 1000)


@pytest.mark.parametrize(
    ("value", "size"),
    [("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("500M", 5 * 10**8),
     ("64Ki", 65536), ("1e3", 1000), ("1.5Gi", 3 * 2**29), (4096, 4096), ("500m", 1)],
)
def test_memory(value: str | int, size: int) -> None:
    assert memory_bytes(value) == size


@pytest.mark.parametrize("value", ["", "Mi", "12 Mi", "1.2.3", "5x", "1GB", "--1"])
def test_bad_quantities(value: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        memory_bytes(value)


@pytest.mark.parametrize(
    ("value", "total", "up", "down"),
    [(3, 10, 3, 3), ("25%", 10, 3, 2), ("100%", 7, 7, 7), ("0%", 5, 0, 0), ("33%", 3, 1, 0)],
)
def test_int_or_percent(value: int | str, total: int, up: int, down: int) -> None:
    assert scaled_int_or_percent(value, total, round_up=True) == up
    assert scaled_int_or_percent(value, total, round_up=False) == down
