"""EndpointSlice names: one per (Service, cluster), never shared by two pairs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla.resources.models.common import is_dns_subdomain
from flotilla.resources.naming import endpoint_slice_name

SERVICE = st.from_regex(r"\A[a-z]([-a-z0-9]{0,20}[a-z0-9])?\Z")
CLUSTER = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")


def test_the_pairs_that_collided_under_the_old_naming_do_not() -> None:
    assert endpoint_slice_name("web", "a-b") == "web.a-b"
    assert endpoint_slice_name("web-a", "b") == "web-a.b"


@given(SERVICE, CLUSTER, SERVICE, CLUSTER)
def test_two_different_pairs_never_share_a_name(s1: str, c1: str, s2: str, c2: str) -> None:
    if (s1, c1) != (s2, c2):
        assert endpoint_slice_name(s1, c1) != endpoint_slice_name(s2, c2)
    assert is_dns_subdomain(endpoint_slice_name(s1, c1))


@pytest.mark.parametrize(("service", "cluster", "problem"), [
    ("web.a", "b", "must be a DNS label"),
    ("", "b", "must be a DNS label"),
    ("web", "", "not a valid object name"),
    ("web", "x" * 250, "not a valid object name"),
])
def test_a_pair_without_a_unique_valid_name_is_refused(service: str, cluster: str,
                                                       problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        endpoint_slice_name(service, cluster)
