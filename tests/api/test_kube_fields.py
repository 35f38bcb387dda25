"""fieldSelector parsing: operators, escapes, and the 400s that name what is wrong."""

from __future__ import annotations

import pytest

from flotilla.api.errors import BadRequestError
from flotilla.api.kube.fields import parse_field_selector
from flotilla.resources.kinds import by_kind

CM = by_kind("ConfigMap")
EVENT = by_kind("Event")


def _cm(name: str, namespace: str = "default") -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": namespace}}


def test_operators_and_conjunction() -> None:
    sel = parse_field_selector("metadata.name!=a, metadata.namespace==ns", CM)
    assert [sel.matches(o) for o in (_cm("a", "ns"), _cm("b", "ns"), _cm("b", "x"))] == [
        False, True, False]
    assert not parse_field_selector("", CM)
    assert parse_field_selector(" ", CM).matches(_cm("any"))


def test_escaped_value_and_missing_field_reads_as_empty() -> None:
    sel = parse_field_selector(r"metadata.name=a\,b\=c", CM)
    assert sel.matches(_cm("a,b=c"))
    cluster_scoped = parse_field_selector("involvedObject.namespace=", EVENT)
    assert cluster_scoped.matches({"involvedObject": {"kind": "Cluster", "name": "east"}})
    assert not cluster_scoped.matches({"involvedObject": {"namespace": "shop"}})


@pytest.mark.parametrize(("text", "named"), [
    ("spec.replicas=3", "spec.replicas"),
    ("involvedObject.name=x", "involvedObject.name"),  # only Events select on it
    ("metadata.name", "metadata.name"),
    (r"metadata.name=a,b", "'b'"),
    ("metadata.name=a\\", "backslash"),
])
def test_refusals_name_the_problem(text: str, named: str) -> None:
    with pytest.raises(BadRequestError) as err:
        parse_field_selector(text, CM)
    assert named in err.value.message
