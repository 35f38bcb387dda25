"""Kubernetes resource quantities ("500m", "1.5", "128Mi", "1G", "2e3") as integers."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


def parse_quantity(value: object, what: str) -> Decimal:
    """The quantity's value in base units; ValueError naming ``what`` if malformed."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what}: expected a quantity such as '500m' or '128Mi', got {value!r}")
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{what}: {text!r} is not a quantity (e.g. '500m', '1', '128Mi')")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise ValueError(f"{what}: {text!r} is not a quantity") from exc
    if number < 0:
        raise ValueError(f"{what}: must not be negative, got {text!r}")
    return number * _SUFFIXES[match.group(2) or ""]


def cpu_millis(value: object, what: str) -> int:
    """Cpu in millicores, rounded up as Kubernetes does (0.0001 cpu is 1m)."""
    millis = parse_quantity(value, what) * 1000
    return int(millis.to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(value: object, what: str) -> int:
    return int(parse_quantity(value, what).to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_memory(n: int) -> str:
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)
