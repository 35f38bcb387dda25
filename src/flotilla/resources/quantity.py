"""Kubernetes resource quantities (``500m``, ``128Mi``, ``1e9``, ``250000u``), one grammar.

The API validates requests and capacities with this module, the scheduler fits replicas
with it and the local runtime admits pods with it: a quantity one of them accepts is a
quantity all of them accept, so a value the API stored can never fail later in a
controller that reads it with a stricter parser.

It follows Kubernetes' ``resource.Quantity`` (``k8s.io/apimachinery/pkg/api/resource``):

* ``<sign>?<digits>[.<digits>]`` then a decimal SI suffix (``n u m k M G T P E``), a
  binary one (``Ki Mi Gi Ti Pi Ei``) or an exponent (``e3``, ``E-6``, ``e+9``).
* Values are exact (integers of nano-units, never floats). A non-zero value finer than
  ``1n`` rounds away from zero to ``1n``; a binary quantity is capped at ``2**63 - 1``;
  a quantity parsed from a binary suffix whose value lies strictly between -1 and 1
  becomes decimal.
* `Quantity.milli_value` and `Quantity.value` round up, as ``MilliValue``/``Value`` do:
  ``0.0001`` cpu asks for ``1m``, ``0.5`` bytes for one byte.
* ``str()`` is Kubernetes' ``String()``: the text as given when it was already canonical,
  else the canonical form (``1.5`` -> ``1500m``, ``1.5Gi`` -> ``1536Mi``).

Three deliberate refusals where Kubernetes' scanner is looser than its own documented
grammar or its int64 arithmetic: a number with no digit (``Mi``, ``.``, ``-`` parse as
zero in Kubernetes), an exponent outside 32 bits (Kubernetes wraps it silently, so
``1e4294967297`` means ten), and magnitudes of ``1e100`` or more or with more than 1000
significant digits (Kubernetes' int64 accessors are undefined far below that; refusing
them keeps one typo from making every process compute a billion-digit number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

__all__ = [
    "Format",
    "Quantity",
    "QuantityError",
    "cpu_millis",
    "integer_amount",
    "memory_bytes",
    "parse_quantity",
]

Format = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

NANO = 10**9
#: Kubernetes caps a binary-suffixed quantity here (``maxAllowed``, the largest int64).
MAX_BINARY = 2**63 - 1
#: Decimal exponent of the smallest magnitude refused (see the module docstring).
MAX_MAGNITUDE_EXPONENT = 100
MAX_SIGNIFICANT_DIGITS = 1000

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12,
                     "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {0: "", 1: "Ki", 2: "Mi", 3: "Gi", 4: "Ti", 5: "Pi", 6: "Ei"}
_GRAMMAR = re.compile(
    r"(?P<sign>[+-]?)(?P<zeros>0*)(?P<num>[0-9]*)(?:\.(?P<denom>[0-9]*))?"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE](?P<exp>[+-]?[0-9]+))?")
#: Go's ``unicode.IsSpace``, which ``Quantity.UnmarshalJSON`` trims.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_EXAMPLES = ("expected a number with an optional suffix (n u m k M G T P E, Ki Mi Gi Ti "
             "Pi Ei) or exponent, such as '500m', '2', '128Mi', '1G' or '1e9'")


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity; the message names the value."""

    def __init__(self, value: object, reason: str, what: str = "") -> None:
        self.value = value
        self.reason = reason
        self.what = what
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}invalid quantity {value!r}: {reason}")

    def naming(self, what: str) -> QuantityError:
        """The same error, prefixed with the field or resource it was read for."""
        return QuantityError(self.value, self.reason, what)


@dataclass(frozen=True, slots=True, eq=False)
class Quantity:
    """An exact amount: ``nanos`` units of 10**-9, with the notation it came in.

    Equality, ordering and hashing look at the amount only (Kubernetes' ``Cmp``), so
    ``Quantity.parse("1Ki") == Quantity.parse("1024")``.
    """

    nanos: int
    format: Format = "DecimalSI"
    #: The text as written, when Kubernetes would print it back unchanged.
    text: str | None = field(default=None, repr=False)

    # --- construction -----------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Quantity:
        """Kubernetes' ``ParseQuantity``: no surrounding whitespace allowed."""
        return _parse(text)

    @classmethod
    def from_millis(cls, millis: int, fmt: Format = "DecimalSI") -> Quantity:
        return cls(millis * 10**6, fmt)

    @classmethod
    def from_int(cls, value: int, fmt: Format = "DecimalSI") -> Quantity:
        return cls(value * NANO, fmt)

    # --- reading ----------------------------------------------------------------------

    @property
    def amount(self) -> Fraction:
        """The exact value in base units (cores, bytes, a count)."""
        return Fraction(self.nanos, NANO)

    def milli_value(self) -> int:
        """``ceil(value * 1000)``, Kubernetes' ``MilliValue``: millicores for cpu."""
        return -(-self.nanos // 10**6)

    def value(self) -> int:
        """``ceil(value)``, Kubernetes' ``Value``: bytes for memory, a count for pods."""
        return -(-self.nanos // NANO)

    def is_zero(self) -> bool:
        return self.nanos == 0

    # --- arithmetic (the sum keeps the first non-zero operand's notation) --------------

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos + other.nanos, self.format if self.nanos else other.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos - other.nanos, self.format if self.nanos else other.format)

    def __neg__(self) -> Quantity:
        return Quantity(-self.nanos, self.format)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.nanos == other.nanos

    def __hash__(self) -> int:
        return hash(self.nanos)

    def __lt__(self, other: Quantity) -> bool:
        return self.nanos < other.nanos

    def __le__(self, other: Quantity) -> bool:
        return self.nanos <= other.nanos

    def __gt__(self, other: Quantity) -> bool:
        return self.nanos > other.nanos

    def __ge__(self, other: Quantity) -> bool:
        return self.nanos >= other.nanos

    # --- printing ---------------------------------------------------------------------

    def __str__(self) -> str:
        """Kubernetes' ``String()``: the text as given if canonical, else `canonical`."""
        return self.text if self.text is not None else self.canonical()

    def canonical(self) -> str:
        """Kubernetes' canonical form (``CanonicalizeBytes``): the largest suffix or
        exponent that loses no precision and leaves no fractional digits."""
        n = self.nanos
        if n == 0:
            return "0"
        sign, n = ("-", -n) if n < 0 else ("", n)
        fmt = self.format
        if fmt == "BinarySI" and (n < 1024 * NANO or n % NANO):
            fmt = "DecimalSI"  # small or fractional: a binary suffix would round
        if fmt == "BinarySI":
            whole, power = n // NANO, 0
            while power < 6 and whole % 1024 == 0:
                whole, power = whole // 1024, power + 1
            return f"{sign}{whole}{_BINARY_BY_POWER[power]}"
        mantissa, exponent = n, -9
        while mantissa % 10 == 0:
            mantissa, exponent = mantissa // 10, exponent + 1
        down = exponent % 3
        mantissa, exponent = mantissa * _pow10(down), exponent - down
        if fmt == "DecimalSI" and exponent in _DECIMAL_BY_EXPONENT:
            suffix = _DECIMAL_BY_EXPONENT[exponent]
        else:  # DecimalExponent, or beyond "E": an exponent keeps the magnitude
            suffix = f"e{exponent}" if exponent else ""
        return f"{sign}{mantissa}{suffix}"


def _parse(text: str) -> Quantity:
    if not text:
        raise QuantityError(text, "empty; " + _EXAMPLES)
    m = _GRAMMAR.fullmatch(text)
    if m is None:
        raise QuantityError(text, _EXAMPLES)
    zeros, num, denom = m["zeros"], m["num"], m["denom"] or ""
    if not (zeros or num or denom):
        raise QuantityError(text, "the number has no digits; " + _EXAMPLES)
    if text == "0":
        return Quantity(0, "DecimalSI", "0")
    negative = m["sign"] == "-"
    suffix = m["suffix"] or ""
    fmt: Format
    if m["exp"] is not None:
        fmt, exponent, power = "DecimalExponent", _exponent(text, m["exp"]), 0
    elif suffix in _BINARY_SUFFIXES:
        fmt, exponent, power = "BinarySI", 0, _BINARY_SUFFIXES[suffix]
    else:
        fmt, exponent, power = "DecimalSI", _DECIMAL_SUFFIXES[suffix], 0
    # value = int(digits) * 10**scale * 2**power
    digits = (num + denom).lstrip("0")
    scale = exponent - len(denom)
    if len(digits.rstrip("0")) > MAX_SIGNIFICANT_DIGITS:
        raise QuantityError(text, f"more than {MAX_SIGNIFICANT_DIGITS} significant digits")
    if fmt == "BinarySI":
        nanos = _binary_nanos(digits, scale, power)
        if 0 < nanos < NANO:
            fmt = "DecimalSI"  # as ParseQuantity does: "0.000001Ki" is 1024n, not binary
    else:
        if digits and len(digits) - 1 + scale >= MAX_MAGNITUDE_EXPONENT:
            raise QuantityError(text, f"magnitude must be below 1e{MAX_MAGNITUDE_EXPONENT}")
        nanos = _decimal_nanos(digits, scale)
    kept = text if _kept_as_written(num or "0", denom, scale, power) else None
    return Quantity(-nanos if negative else nanos, fmt, kept)


def _exponent(text: str, written: str) -> int:
    sign, body = ("-", written[1:]) if written[0] == "-" else ("", written.lstrip("+"))
    body = body.lstrip("0") or "0"
    value = int(sign + body) if len(body) <= 10 else 2**40
    if not -(2**31) <= value < 2**31:
        raise QuantityError(text, "the exponent must fit in 32 bits")
    return value


def _pow10(n: int) -> int:
    """10**n for n >= 0, typed as the int it is."""
    return int(pow(10, n))


def _decimal_nanos(digits: str, scale: int) -> int:
    """ceil(int(digits) * 10**(scale + 9)) without building huge powers of ten."""
    if not digits:
        return 0
    shift = scale + 9
    if shift >= 0:
        return int(digits) * _pow10(shift)
    keep = len(digits) + shift
    if keep <= 0:
        return 1  # non-zero but below 1n: rounds up to 1n
    head, tail = digits[:keep], digits[keep:]
    return int(head) + (1 if tail.strip("0") else 0)


def _binary_nanos(digits: str, scale: int, power: int) -> int:
    """ceil(int(digits) * 10**scale * 2**power * 10**9), capped at MAX_BINARY."""
    if not digits:
        return 0
    if len(digits) - 1 + scale >= 20:  # at least 1e20 before the suffix: over the cap
        return MAX_BINARY * NANO
    shift = scale + 9
    significand = int(digits) << power
    if shift >= 0:
        nanos = significand * _pow10(shift)
    elif -shift >= len(digits) + 19:  # 2**60 < 1e19: the whole value is below 1n
        nanos = 1
    else:
        nanos = -(-significand // _pow10(-shift))
    return min(nanos, MAX_BINARY * NANO)


def _kept_as_written(num: str, denom: str, scale: int, power: int) -> bool:
    """Whether ``ParseQuantity`` keeps the input as the quantity's string: only on its
    int64 fast path, and only when that text is canonical by its quick test."""
    if power:
        precision = 14 - len(num) - 3 * (power // 10)
        value = int(num)
        return (not denom and precision >= 0 and value << power <= MAX_BINARY
                and value & 7 != 0)
    shifted = num + denom
    return (18 - len(shifted) >= 0 and scale >= -9
            and scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0")


def parse_quantity(value: object, *, negative: bool = True) -> Quantity:
    """A quantity from decoded JSON or YAML, as ``Quantity.UnmarshalJSON`` reads one.

    A string is trimmed of surrounding whitespace; a number is read from its decimal
    text (a float through Python's shortest round-tripping repr); booleans, null and
    everything else are refused. ``negative=False`` refuses amounts below zero, which no
    request, limit or capacity may be.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(value, "expected a string or a number such as '500m' or 2")
    text = value.strip(_GO_SPACE) if isinstance(value, str) else repr(value)
    q = _parse(text)
    if not negative and q.nanos < 0:
        raise QuantityError(value, "must not be negative")
    return q


def integer_amount(resource: str, value: object) -> int:
    """A request or capacity in the integer units every fit check uses: millicores for
    ``cpu`` (rounded up, like ``MilliValue``), otherwise the value rounded up (bytes for
    memory, a count for pods and extended resources). Negative amounts are refused."""
    try:
        q = value if isinstance(value, Quantity) else parse_quantity(value, negative=False)
    except QuantityError as e:
        raise e.naming(resource) from None
    return q.milli_value() if resource == "cpu" else q.value()


def cpu_millis(value: object, what: str = "cpu") -> int:
    """Cpu in millicores; a `QuantityError` naming ``what`` and the value if not one."""
    try:
        return parse_quantity(value, negative=False).milli_value()
    except QuantityError as e:
        raise e.naming(what) from None


def memory_bytes(value: object, what: str = "memory") -> int:
    """Memory in bytes, rounded up; a `QuantityError` naming ``what`` if not one."""
    try:
        return parse_quantity(value, negative=False).value()
    except QuantityError as e:
        raise e.naming(what) from None
