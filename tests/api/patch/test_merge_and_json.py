"""Merge patch (RFC 7386, the examples of its Appendix A) and JSON patch (RFC 6902,
the examples of its Appendix A), as `flotilla.api.patch` applies them."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.api.patch import PatchError, json_patch, merge_patch
from flotilla.api.patch.merge import create_merge_patch

RFC7386: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC7386)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, result: Any) -> None:
    before = repr(target)
    assert merge_patch(target, patch) == result
    assert repr(target) == before  # the stored object is never modified in place


def test_create_merge_patch_round_trips() -> None:
    a = {"spec": {"replicas": 2, "x": {"y": 1}}, "metadata": {"labels": {"a": "1"}}}
    b = {"spec": {"replicas": 3}, "metadata": {"labels": {"a": "1", "b": "2"}}}
    assert merge_patch(a, create_merge_patch(a, b)) == b


RFC6902: list[tuple[Any, list[dict[str, Any]], Any]] = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"},
      {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"foo": "bar"}, [{"op": "copy", "from": "/foo", "path": "/baz"}],
     {"foo": "bar", "baz": "bar"}),
]


@pytest.mark.parametrize(("target", "ops", "result"), RFC6902)
def test_json_patch_rfc6902_examples(target: Any, ops: list[dict[str, Any]],
                                     result: Any) -> None:
    assert json_patch(target, ops) == result


@pytest.mark.parametrize(("target", "ops", "message"), [
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "test failed"),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "does not exist"),
    ({"foo": "bar"}, [{"op": "remove", "path": "/nope"}], "does not exist"),
    ({"foo": [1]}, [{"op": "replace", "path": "/foo/5", "value": 2}], "out of range"),
])
def test_json_patch_failures_name_the_operation(target: Any, ops: list[dict[str, Any]],
                                                message: str) -> None:
    with pytest.raises(PatchError) as err:
        json_patch(target, ops)
    assert message in err.value.message
    assert "operation 0" in err.value.message
    assert not err.value.malformed


def test_a_failing_operation_leaves_nothing_half_applied() -> None:
    target = {"spec": {"replicas": 1}}
    with pytest.raises(PatchError):
        json_patch(target, [{"op": "replace", "path": "/spec/replicas", "value": 5},
                            {"op": "test", "path": "/spec/replicas", "value": 1}])
    assert target == {"spec": {"replicas": 1}}


@pytest.mark.parametrize("ops", [
    {"op": "add"}, [{"op": "frobnicate", "path": "/a"}], [{"op": "add", "path": "a"}],
    [{"op": "add", "path": "/a"}], ["not an object"],
])
def test_malformed_json_patches(ops: Any) -> None:
    with pytest.raises(PatchError) as err:
        json_patch({}, ops)
    assert err.value.malformed
