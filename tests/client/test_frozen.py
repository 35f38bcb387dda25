"""Frozen JSON values: every way of changing one in place is refused, and every way of
reading or copying one still works as on plain containers."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from flotilla.client.frozen import FrozenDict, FrozenList, freeze, thaw


def sample() -> dict[str, Any]:
    return {"metadata": {"name": "a", "labels": {"app": "x"}},
            "spec": {"ports": [{"port": 80}], "tags": ["b", "a"]}}


CHANGES: list[Callable[[Any], object]] = [
    lambda o: o.__setitem__("x", 1),
    lambda o: o.__delitem__("spec"),
    lambda o: o.pop("spec"),
    lambda o: o.popitem(),
    lambda o: o.clear(),
    lambda o: o.update(x=1),
    lambda o: o.setdefault("x", 1),
    lambda o: o.__ior__({"x": 1}),
    lambda o: o["metadata"]["labels"].__setitem__("app", "y"),
    lambda o: o["spec"]["ports"][0].__setitem__("port", 81),
    lambda o: o["spec"]["tags"].append("c"),
    lambda o: o["spec"]["tags"].extend(["c"]),
    lambda o: o["spec"]["tags"].insert(0, "c"),
    lambda o: o["spec"]["tags"].pop(),
    lambda o: o["spec"]["tags"].remove("a"),
    lambda o: o["spec"]["tags"].sort(),
    lambda o: o["spec"]["tags"].reverse(),
    lambda o: o["spec"]["tags"].clear(),
    lambda o: o["spec"]["tags"].__setitem__(0, "c"),
    lambda o: o["spec"]["tags"].__delitem__(0),
    lambda o: o["spec"]["tags"].__iadd__(["c"]),
    lambda o: o["spec"]["tags"].__imul__(2),
]


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_in_place_is_refused(change: Callable[[Any], object]) -> None:
    frozen = freeze(sample())
    with pytest.raises(TypeError, match="read-only"):
        change(frozen)
    assert frozen == sample()


def test_reads_and_copies_behave_as_plain_containers() -> None:
    frozen = freeze(sample())
    assert isinstance(frozen, dict)
    assert isinstance(frozen["spec"]["tags"], list)
    assert frozen == sample()
    assert json.loads(json.dumps(frozen)) == sample()
    assert sorted(frozen["spec"]["tags"]) == ["a", "b"]
    assert frozen["spec"]["tags"] + ["c"] == ["b", "a", "c"]
    assert {**frozen, "x": 1}["x"] == 1
    for plain in (copy.deepcopy(frozen), thaw(frozen), pickle.loads(pickle.dumps(frozen))):
        assert plain == sample()
        plain["spec"]["ports"][0]["port"] = 81  # a plain deep copy: every level mutable
        plain["spec"]["tags"].append("c")
        assert type(plain) is dict
    shallow = copy.copy(frozen)
    shallow["x"] = 1
    assert type(shallow) is dict
    assert isinstance(shallow["spec"], FrozenDict), "a shallow copy shares frozen values"
    assert frozen == sample()


def test_freezing_reuses_frozen_parts() -> None:
    frozen = freeze(sample())
    assert freeze(frozen) is frozen
    outer = freeze({"inner": frozen, "more": [frozen]})
    assert outer["inner"] is frozen
    assert outer["more"][0] is frozen
    assert isinstance(outer["more"], FrozenList)
