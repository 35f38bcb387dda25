"""Compact completion-index text, as Kubernetes writes ``status.completedIndexes``."""

from __future__ import annotations

import pytest

from flotilla.resources.indexes import IndexSetError, format_indexes, parse_indexes


@pytest.mark.parametrize(("indexes", "text"), [
    (set(), ""), ({0}, "0"), ({1, 2, 3, 5}, "1-3,5"), ({5, 3, 1, 2, 7, 8, 9}, "1-3,5,7-9"),
    ({0, 2, 4}, "0,2,4"),
])
def test_format_and_parse_round_trip(indexes: set[int], text: str) -> None:
    assert format_indexes(indexes) == text
    assert parse_indexes(text) == indexes


def test_parse_accepts_overlaps_and_spaces() -> None:
    assert parse_indexes("3-5, 4-6,1") == {1, 3, 4, 5, 6}


@pytest.mark.parametrize("text", ["a", "1-", "-3", "5-2", "1,,x"])
def test_bad_text_is_refused(text: str) -> None:
    with pytest.raises(IndexSetError):
        parse_indexes(text)
