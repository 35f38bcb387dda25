"""The one quantity grammar agrees with Kubernetes' own ``resource.Quantity`` tests.

The tables are Kubernetes' (vendored in ``kubernetes/quantity_cases.json`` with their
origin and licence); the properties check what those tables cannot enumerate.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla.resources.quantity import (
    MAX_BINARY,
    Format,
    Quantity,
    QuantityError,
    cpu_millis,
    integer_amount,
    memory_bytes,
    parse_quantity,
)

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "kubernetes" / "quantity_cases.json").read_text())
NANO = 10**9


def _exact(unscaled: int, exponent: int) -> Fraction:
    return Fraction(unscaled) * Fraction(10) ** exponent


def _made(unscaled: int, exponent: int, fmt: Format) -> Quantity:
    nanos = _exact(unscaled, exponent) * NANO
    assert nanos.denominator == 1
    return Quantity(int(nanos), fmt)


# --- Kubernetes' tables -------------------------------------------------------------


@pytest.mark.parametrize(("text", "unscaled", "exponent", "fmt"), CASES["parse"])
def test_parse_matches_kubernetes(text: str, unscaled: int, exponent: int, fmt: str) -> None:
    q = Quantity.parse(text)
    assert (q.amount, q.format) == (_exact(unscaled, exponent), fmt)
    # Kubernetes' table is also checked with an explicit sign in front of every input.
    negative = Quantity.parse("-" + text)
    assert (negative.amount, negative.format) == (-_exact(unscaled, exponent), fmt)
    positive = Quantity.parse("+" + text)
    assert (positive.amount, positive.format) == (_exact(unscaled, exponent), fmt)


@pytest.mark.parametrize("text", CASES["invalid"])
def test_invalid_like_kubernetes_with_the_value_named(text: str) -> None:
    with pytest.raises(QuantityError, match=f"invalid quantity {re.escape(repr(text))}"):
        Quantity.parse(text)


@pytest.mark.parametrize(("unscaled", "exponent", "fmt", "expect", "alternate"), CASES["string"])
def test_canonical_strings_match_kubernetes(unscaled: int, exponent: int, fmt: Format,
                                            expect: str, alternate: str) -> None:
    q = _made(unscaled, exponent, fmt)
    assert str(q) == q.canonical() == expect
    again = Quantity.parse(expect)
    assert again.text == expect
    assert str(again) == expect
    if alternate:
        other = Quantity.parse(alternate)
        assert other.text is None
        assert str(other) == expect
    if not q.is_zero():
        assert str(-q) == "-" + expect


@pytest.mark.parametrize(("text", "expect"), CASES["parse_emit"])
def test_parse_then_print_matches_kubernetes(text: str, expect: str) -> None:
    assert str(Quantity.parse(text)) == expect
    assert str(Quantity.parse("-" + text)) == "-" + expect


@pytest.mark.parametrize(("raw", "expect"), CASES["json_whitespace"])
def test_json_values_are_trimmed_like_unmarshal_json(raw: str, expect: str) -> None:
    assert str(parse_quantity(json.loads(raw))) == expect


@pytest.mark.parametrize(("a", "b", "cmp"), CASES["cmp"])
def test_comparison_matches_kubernetes(a: str, b: str, cmp: int) -> None:
    x, y = Quantity.parse(a), Quantity.parse(b)
    assert (x > y) - (x < y) == cmp


@pytest.mark.parametrize(("value", "scale", "expect"), CASES["scaled_set"])
def test_scaled_quantities_print_and_read_back(value: int, scale: int, expect: str) -> None:
    q = _made(value, scale, "DecimalSI")
    assert str(q) == expect
    assert Quantity.parse(expect) == q


@pytest.mark.parametrize("text", CASES["scanner_without_digits"] + ["Mi", "k", "-", "+", "e3"])
def test_a_number_without_digits_is_refused(text: str) -> None:
    """Kubernetes' scanner reads these as zero although its grammar requires a digit;
    Flotilla follows the grammar (a bare ``Mi`` is a typo, not a request for nothing)."""
    with pytest.raises(QuantityError, match="no digits"):
        Quantity.parse(text)


# --- the milli/byte accessors and the limits --------------------------------------------


@pytest.mark.parametrize(("text", "millis", "value"), [
    ("250000u", 250, 1), ("0.0001", 1, 1), ("1.5", 1500, 2), ("1e3", 1_000_000, 1000),
    ("1n", 1, 1), ("0", 0, 0), ("-1.5", -1500, -1), ("1Ki", 1_024_000, 1024),
])
def test_milli_value_and_value_round_up(text: str, millis: int, value: int) -> None:
    q = Quantity.parse(text)
    assert (q.milli_value(), q.value()) == (millis, value)


def test_helpers_name_the_field_and_refuse_negative_amounts() -> None:
    assert (cpu_millis("250000u"), memory_bytes("1e9")) == (250, 10**9)
    assert integer_amount("cpu", 1.5) == 1500
    assert integer_amount("pods", "110") == 110
    with pytest.raises(QuantityError, match=r"^requests.cpu: invalid quantity '-1': must not"):
        cpu_millis("-1", "requests.cpu")
    with pytest.raises(QuantityError, match=r"^memory: invalid quantity True"):
        memory_bytes(True)
    with pytest.raises(QuantityError, match="invalid quantity 'nan'"):
        parse_quantity(float("nan"))


@pytest.mark.parametrize(("text", "why"), [
    ("1e4294967297", "32 bits"), ("1e100", "below 1e100"), ("1" * 101, "below 1e100"),
    ("0." + "1" * 1001, "significant digits"),
])
def test_absurd_magnitudes_are_refused_not_computed(text: str, why: str) -> None:
    with pytest.raises(QuantityError, match=why):
        Quantity.parse(text)


def test_tiny_and_huge_values_stay_cheap_and_exact() -> None:
    assert Quantity.parse("1e-2147483648").nanos == 1  # rounds up to 1n
    assert Quantity.parse("0." + "0" * 5000 + "1").nanos == 1
    assert Quantity.parse("1" + "0" * 60 + "Ei").nanos == MAX_BINARY * NANO
    assert str(Quantity.parse("1e99")) == "1e99"


# --- properties --------------------------------------------------------------------------

_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
            "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


@st.composite
def written(draw: st.DrawFn) -> tuple[str, Fraction, Format]:
    """A quantity as a user might write it, with its exact value and notation by the
    definition (before Kubernetes' rounding and cap)."""
    sign = draw(st.sampled_from(["", "+", "-"]))
    whole = draw(st.text("0123456789", min_size=0, max_size=12))
    point = draw(st.booleans())
    frac = draw(st.text("0123456789", min_size=0, max_size=12)) if point else ""
    if not (whole or frac):
        whole = "0"
    kind = draw(st.sampled_from(["dec", "bin", "exp"]))
    number = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    fmt: Format
    if kind == "dec":
        suffix = draw(st.sampled_from(sorted(_DECIMAL)))
        value, fmt = number * Fraction(10) ** _DECIMAL[suffix], "DecimalSI"
    elif kind == "bin":
        suffix = draw(st.sampled_from(sorted(_BINARY)))
        value, fmt = number * 2 ** _BINARY[suffix], "BinarySI"
    else:
        e = draw(st.integers(-30, 30))
        suffix = draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "+"] if e >= 0
                                                                     else [""])) + str(e)
        value, fmt = number * Fraction(10) ** e, "DecimalExponent"
    text = f"{sign}{whole}{'.' if point else ''}{frac}{suffix}"
    return text, (-value if sign == "-" else value), fmt


def _kubernetes_value(value: Fraction, fmt: Format) -> Fraction:
    """Round away from zero to 1n, then cap a binary quantity at 2**63-1."""
    magnitude = abs(value)
    nanos = math.ceil(magnitude * NANO)
    if fmt == "BinarySI":
        nanos = min(nanos, MAX_BINARY * NANO)
    return Fraction(nanos if value >= 0 else -nanos, NANO)


@given(written())
def test_every_written_quantity_has_its_exact_value(case: tuple[str, Fraction, Format]) -> None:
    text, value, fmt = case
    q = Quantity.parse(text)
    assert q.amount == _kubernetes_value(value, fmt)
    expected_fmt = "DecimalSI" if fmt == "BinarySI" and 0 < abs(q.amount) < 1 else fmt
    assert q.format == expected_fmt
    assert q.milli_value() == math.ceil(q.amount * 1000)
    assert q.value() == math.ceil(q.amount)


@given(written())
def test_canonical_form_round_trips_and_is_a_fixed_point(
        case: tuple[str, Fraction, Format]) -> None:
    q = Quantity.parse(case[0])
    canonical = q.canonical()
    again = Quantity.parse(canonical)
    assert again == q
    assert again.canonical() == canonical
    assert str(again) == canonical  # canonical text is kept as written


@given(st.integers(-(10**30), 10**30), st.sampled_from(["DecimalSI", "BinarySI",
                                                        "DecimalExponent"]))
def test_any_amount_prints_to_text_that_reads_back(nanos: int, fmt: Format) -> None:
    q = Quantity(nanos, fmt)
    if fmt == "BinarySI" and abs(nanos) > MAX_BINARY * NANO and nanos % NANO == 0:
        # Kubernetes caps what a binary suffix reads to 2**63-1, so a larger sum prints
        # as text that reads back capped (as it does in Kubernetes).
        assert abs(Quantity.parse(str(q)).nanos) == MAX_BINARY * NANO
    else:
        assert Quantity.parse(str(q)) == q


@given(written(), written())
def test_parsing_is_monotonic(a: tuple[str, Fraction, Format],
                              b: tuple[str, Fraction, Format]) -> None:
    (ta, va, fa), (tb, vb, fb) = a, b
    qa, qb = Quantity.parse(ta), Quantity.parse(tb)
    capped = MAX_BINARY
    if va <= vb and not (fa == "BinarySI" and abs(va) > capped) \
            and not (fb == "BinarySI" and abs(vb) > capped):
        assert qa <= qb
        assert qa.milli_value() <= qb.milli_value()


@given(st.lists(written(), min_size=1, max_size=5))
def test_sums_are_exact(cases: list[tuple[str, Fraction, Format]]) -> None:
    quantities = [Quantity.parse(t) for t, _, _ in cases]
    total = quantities[0]
    for q in quantities[1:]:
        total = total + q
    assert total.amount == sum(q.amount for q in quantities)
    if not (total.format == "BinarySI" and abs(total.nanos) > MAX_BINARY * NANO
            and total.nanos % NANO == 0):
        assert Quantity.parse(str(total)) == total
