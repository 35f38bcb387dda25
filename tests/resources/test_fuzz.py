"""Whatever a client sends, validation answers with InvalidObject or UnknownKind: never
another exception (the API server turns those two into 4xx; anything else would be a 500).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flotilla.resources.kinds import UnknownKind
from flotilla.resources.validation import InvalidObject, validate_object
from tests.resources.test_examples import EVERY_KIND

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["", "10s", "500m", "128Mi", "25%", "In"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=10) | st.integers(-2, 2)
        | st.sampled_from(["name", "spec", "replicas", "clusterNames"]),
        inner, max_size=4),
    max_leaves=20,
)


def _answer(doc: Any) -> tuple[bool, str]:
    """(valid, error text); any exception other than the two API errors fails the test."""
    try:
        validate_object(doc)
    except (InvalidObject, UnknownKind) as e:
        return False, str(e)
    return True, ""


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every member path of a JSON document (where a fuzzed value can go)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EVERY_KIND), st.data(), JSON)
def test_any_value_anywhere_is_a_clean_answer(doc: dict[str, Any], data: st.DataObject,
                                              value: Any) -> None:
    doc = copy.deepcopy(doc)
    path = data.draw(st.sampled_from(_paths(doc)))
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    ok, message = _answer(doc)
    assert ok or message


@settings(max_examples=100, deadline=None)
@given(JSON)
def test_any_document_is_a_clean_answer(value: Any) -> None:
    ok, message = _answer(value)
    assert ok or message
