"""Indexes of an Indexed Job per cluster: disjoint, complete, stable on re-placement."""

from __future__ import annotations

from flotilla.scheduler import split_indexes, split_parallelism


def _check_exactly_once(shares: dict[str, frozenset[int]], owed: set[int]) -> None:
    seen: list[int] = [i for s in shares.values() for i in s]
    assert len(seen) == len(set(seen)), "an index owed by two clusters"
    assert set(seen) == owed


def test_first_placement_gives_contiguous_ranges() -> None:
    shares = split_indexes(24, [("a", 12), ("b", 12)])
    assert shares == {"a": frozenset(range(12)), "b": frozenset(range(12, 24))}


def test_uneven_counts() -> None:
    shares = split_indexes(7, [("a", 4), ("b", 2), ("c", 1)])
    _check_exactly_once(shares, set(range(7)))
    assert {n: len(s) for n, s in shares.items()} == {"a": 4, "b": 2, "c": 1}


def test_lost_cluster_unfinished_indexes_go_to_the_survivor() -> None:
    first = split_indexes(24, [("a", 12), ("b", 12)])
    done = frozenset(range(12, 17))  # b completed 12..16, then died
    again = split_indexes(24, [("a", 24)], previous={"a": first["a"]}, done=done)
    assert again["a"] == frozenset(range(12)) | frozenset(range(17, 24))
    _check_exactly_once({"a": again["a"], "done": done}, set(range(24)))


def test_live_cluster_keeps_its_indexes_even_when_its_count_shrinks() -> None:
    first = split_indexes(10, [("a", 5), ("b", 5)])
    again = split_indexes(10, [("a", 2), ("b", 5), ("c", 3)], previous=first)
    assert again["a"] == first["a"]
    assert again["b"] == first["b"]
    assert again["c"] == frozenset()


def test_indexes_beyond_completions_are_dropped() -> None:
    shares = split_indexes(4, [("a", 4)], previous={"a": frozenset({2, 9})})
    assert shares["a"] == frozenset(range(4))


def test_parallelism_follows_the_share() -> None:
    assert split_parallelism(6, {"a": 12, "b": 12}) == {"a": 3, "b": 3}
    assert split_parallelism(6, {"a": 19, "b": 5}) == {"a": 5, "b": 1}
    assert split_parallelism(1, {"a": 3, "b": 3}) == {"a": 1, "b": 1}
    assert split_parallelism(8, {"a": 2, "b": 0}) == {"a": 2, "b": 0}
