"""The limits every decoded request object obeys, whatever its format (JSON or YAML).

One home for the rules, so JSON and YAML cannot drift apart: each format's decoder
calls the same checks *before* the expensive step they guard (a number literal is
measured before ``int()`` converts it, nesting is counted before a recursive parser
descends into it), and the decoded object is measured once more as compact JSON, the
form it is stored in. Each check raises `InputLimitError` with a message naming the
limit, which the HTTP layer answers with a 400 (413 for the size).

Why these numbers:

* depth 100: no Flotilla kind nests deeper than about 10 levels; 100 is what many
  parsers (Go's encoding/json refuses at 10,000; Rust's serde_json at 128) treat as a
  sane bound, and it keeps every recursive walk far from Python's recursion limit;
* 100 digits per number: an int64 has 19, a float literal rarely more than 25. Python
  refuses ints of more than 4,300 digits only *after* spending quadratic time on them;
  refusing at 100 costs nothing;
* 1.5 MiB per object (compact JSON, UTF-8): etcd's default request limit, the size
  Kubernetes objects are held to. A YAML body can be smaller than its JSON, so the
  object is measured after decoding, not only as raw bytes;
* 20,000 nodes per YAML body: YAML costs ~5 µs a node to decode even with libyaml
  (PyYAML resolves and constructs each node in Python; JSON costs ~0.1 µs), on the
  event loop; 20,000 nodes is ~0.1 s, and more than a hand-written manifest holds
  (a Deployment has ~100). Larger objects go as JSON, as kubectl and flotilla send.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 100
MAX_NUMBER_DIGITS = 100
MAX_OBJECT_BYTES = 1536 * 1024
MAX_YAML_NODES = 20_000

#: A JSON string literal (escapes included), written so the regex engine never backtracks.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class InputLimitError(ValueError):
    """A request object breaks one of the limits above; the message names it."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        #: True for the size limit (answered 413), False for the shape limits (400).
        self.too_large = too_large


def too_deep() -> InputLimitError:
    return InputLimitError(
        f"the object is nested deeper than the limit of {MAX_DEPTH} levels")


def check_number_literal(text: str) -> None:
    """Refuse a number literal with more than `MAX_NUMBER_DIGITS` digits, before any
    conversion looks at it (``int()`` of a huge literal is quadratic)."""
    digits = sum(1 for ch in text if ch.isdigit()) if len(text) > MAX_NUMBER_DIGITS else 0
    if digits > MAX_NUMBER_DIGITS:
        raise InputLimitError(
            f"a number has {digits} digits, more than the limit of {MAX_NUMBER_DIGITS} "
            f"(it starts {text[:20]}...)")


def check_json_nesting(text: str) -> None:
    """Refuse JSON text nested deeper than `MAX_DEPTH`, before the (recursive) parser
    sees it. Brackets inside strings do not count. Cheap when the text holds fewer
    brackets than the limit (the common case); otherwise one pass over the brackets."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for ch in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise too_deep()
        else:
            depth -= 1


def json_int(text: str) -> int:
    """``parse_int`` for `json.loads`: the digit limit, then the conversion."""
    check_number_literal(text)
    return int(text)


def json_float(text: str) -> float:
    """``parse_float`` for `json.loads`: the digit limit, then a finite float."""
    check_number_literal(text)
    value = float(text)
    if not math.isfinite(value):
        raise InputLimitError(f"the number {text[:20]} is out of range for a float")
    return value


def json_constant(name: str) -> Any:
    """``parse_constant`` for `json.loads`: NaN and Infinity are not JSON."""
    raise InputLimitError(f"{name} is not a JSON number; send a finite number or a string")


def compact_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, the form the object is measured (and stored) in;
    an `InputLimitError` when it is not representable as JSON (a YAML ``!!binary`` or
    ``!!set``, NaN, an unpaired surrogate) or is larger than `MAX_OBJECT_BYTES`."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        encoded = text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InputLimitError(f"the object holds a value JSON cannot represent: {exc}") from None
    except RecursionError:
        raise too_deep() from None
    if len(encoded) > MAX_OBJECT_BYTES:
        raise InputLimitError(
            f"the object is {len(encoded)} bytes as compact JSON, larger than the limit "
            f"of {MAX_OBJECT_BYTES} bytes (1.5 MiB)", too_large=True)
    return encoded
