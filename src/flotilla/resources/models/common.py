"""Building blocks every model shares: base classes, scalar types, durations,
quantities, conditions and label selectors.

Two base classes carry the one policy decision that matters here:

* `Model` is for Flotilla's own kinds: *strict* (``"3"`` is not an integer, ``1`` is not
  a boolean) and *closed* (an unknown field is an error, so a typo never silently does
  nothing).
* `Loose` is for Kubernetes manifests: open (fields Flotilla does not read are kept and
  passed through to the member cluster untouched) but still strict on the fields Flotilla
  does read, because those drive scheduling and the local runtime.

Scalars that need parsing (durations, timestamps, int-or-percent, quantities) use
``PlainValidator`` so that a bad value produces one error at the field's own path rather
than a union's worth of noise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from flotilla.resources.labels import Selector, selector_from_dict
from flotilla.resources.quantity import QuantityError, parse_quantity

__all__ = [
    "Condition",
    "ConditionStatus",
    "Duration",
    "IntOrPercent",
    "LabelKey",
    "LabelSelector",
    "LabelSelectorRequirement",
    "LabelValue",
    "Loose",
    "Model",
    "NonNegInt",
    "PosInt",
    "Quantity",
    "Timestamp",
    "Unsupported",
    "format_duration",
    "is_dns_subdomain",
    "karmada_default_only",
    "parse_duration",
    "qualified_name_problem",
    "scaled_int_or_percent",
    "show_value",
]

UNSUPPORTED = "field is not supported by Flotilla"


def _drop_nulls(data: Any) -> Any:
    """In Kubernetes JSON a ``null`` member means "not set".

    YAML makes nulls easy to write by accident (``labels:`` with every line commented
    out) and tools emit them (``kubectl create --dry-run -o yaml`` writes
    ``creationTimestamp: null``); Kubernetes accepts both, so Flotilla does too. Done per
    model on its own members (a C-level scan when there is none), not by walking the
    whole object, because it runs on every API write. Nulls inside lists and maps stay
    and are reported.
    """
    if isinstance(data, dict) and None in data.values():
        return {k: v for k, v in data.items() if v is not None}
    return data


class Model(BaseModel):
    """Base of Flotilla's own kinds: strict types, unknown fields rejected."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        # A docstring under a field is its description in the OpenAPI documents
        # (`kubectl explain`).
        use_attribute_docstrings=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_unset(cls, data: Any) -> Any:
        return _drop_nulls(data)


class Loose(BaseModel):
    """Base of Kubernetes manifest parts: fields we read are strict, others kept as given."""

    model_config = ConfigDict(
        strict=True,
        extra="allow",
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_unset(cls, data: Any) -> Any:
        return _drop_nulls(data)


NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]


# --- durations -------------------------------------------------------------------------

_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Parse a Go duration (``"1s"``, ``"500ms"``, ``"1m30s"``, ``"1.5h"``) to seconds.

    Go's syntax, because Karmada, Kubernetes and Envoy users already write it. Negative
    durations are refused: every duration in Flotilla is a wait or a timeout.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as '10s' or '500ms', got {text!r}")
    s = text.strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            break
        total += float(m[1]) * _UNIT_SECONDS[m[2]]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit (ms, s, m, h), "
            "such as '10s', '500ms' or '1m30s'"
        )
    return total


def format_duration(seconds: float) -> str:
    """The inverse of `parse_duration`, in Go's canonical form (``90`` -> ``"1m30s"``)."""
    seconds = round(seconds, 6)  # microseconds: enough for every timer, no "1m60s"
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = round(seconds * 1000, 6)
        return f"{ms:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + f"{round(secs, 6):g}s"


def _duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise PydanticCustomError(
            "duration", "expected a duration such as '10s' or '500ms', got {got}",
            {"got": show_value(value)},
        )
    try:
        return parse_duration(value)
    except ValueError as e:
        raise PydanticCustomError("duration", str(e)) from None


#: A duration in seconds, written as a Go duration string; dumps back to that form.
Duration = Annotated[
    float,
    PlainValidator(_duration, json_schema_input_type=str),
    PlainSerializer(format_duration, return_type=str),
]


# --- timestamps ------------------------------------------------------------------------

def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise PydanticCustomError(
        "timestamp", "expected an RFC 3339 time such as '2024-05-01T12:00:00Z', got {got}",
        {"got": show_value(value)},
    )


def _format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: An RFC 3339 time (Kubernetes ``metav1.Time``); always timezone-aware, dumps as ``...Z``.
Timestamp = Annotated[
    datetime,
    PlainValidator(_timestamp, json_schema_input_type=str),
    PlainSerializer(_format_timestamp, return_type=str),
]


# --- int or percent --------------------------------------------------------------------

_PERCENT = re.compile(r"^(\d+)%$")


def _int_or_percent(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        return value
    raise PydanticCustomError(
        "int_or_percent",
        "expected a non-negative integer or a percentage such as '25%', got {got}",
        {"got": show_value(value)},
    )


#: Kubernetes ``IntOrString`` as used by maxSurge/maxUnavailable: ``3`` or ``"25%"``.
IntOrPercent = Annotated[int | str, PlainValidator(_int_or_percent)]


def scaled_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Resolve an `IntOrPercent` against ``total`` the way Kubernetes does."""
    if isinstance(value, int):
        return value
    m = _PERCENT.match(value)
    if not m:
        raise ValueError(f"invalid int-or-percent {value!r}")
    exact = int(m[1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


# --- quantities ------------------------------------------------------------------------


def _quantity(value: Any) -> str:
    """Checked with the one quantity grammar (`flotilla.resources.quantity`), so what the
    API stores is exactly what the scheduler and the runtimes can read."""
    try:
        parse_quantity(value, negative=False)
    except QuantityError as e:
        raise PydanticCustomError("quantity", "{problem}", {"problem": str(e)}) from None
    return str(value) if isinstance(value, int | float) else cast(str, value)


#: A Kubernetes resource quantity, kept as its text; read it with
#: `flotilla.resources.quantity.parse_quantity`.
Quantity = Annotated[str, PlainValidator(_quantity, json_schema_input_type=str | int | float)]


# --- labels ----------------------------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def is_dns_subdomain(text: str) -> bool:
    return len(text) <= 253 and bool(_DNS_SUBDOMAIN.match(text))


def qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label/annotation key (``[prefix/]name``), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return "the prefix before '/' must not be empty"
    if prefix and not is_dns_subdomain(prefix):
        return "the prefix must be a DNS subdomain (lower case, digits, '-', '.')"
    if not name:
        return "the name part must not be empty"
    if len(name) > 63:
        return "the name part must be at most 63 characters"
    if not _NAME_PART.match(name):
        return ("the name part must be letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def _label_key(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("label_key", "expected a string key, got {got}",
                                  {"got": show_value(value)})
    problem = qualified_name_problem(value)
    if problem:
        raise PydanticCustomError("label_key", "invalid key {key}: {problem}",
                                  {"key": repr(value), "problem": problem})
    return value


def _label_value(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("label_value", "expected a string, got {got}",
                                  {"got": show_value(value)})
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise PydanticCustomError(
            "label_value",
            "invalid label value {value}: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
            {"value": repr(value)},
        )
    return value


#: A label or annotation key: ``[DNS-subdomain/]name``.
LabelKey = Annotated[str, PlainValidator(_label_key, json_schema_input_type=str)]
#: A label value: empty, or up to 63 characters of ``[A-Za-z0-9-_.]``.
LabelValue = Annotated[str, PlainValidator(_label_value, json_schema_input_type=str)]


class LabelSelectorRequirement(Model):
    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = []

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class LabelSelector(Model):
    """``metav1.LabelSelector``; `selector` compiles it once for matching."""

    match_labels: dict[LabelKey, LabelValue] = {}
    match_expressions: list[LabelSelectorRequirement] = []

    def selector(self) -> Selector:
        return selector_from_dict(self.model_dump(by_alias=True))


# --- conditions ------------------------------------------------------------------------

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """``metav1.Condition`` plus ``lastHeartbeatTime`` (Cluster Ready uses it)."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: Timestamp | None = None
    last_heartbeat_time: Timestamp | None = None
    observed_generation: NonNegInt | None = None


# --- Karmada fields Flotilla recognises but does not implement -------------------------

def show_value(value: Any) -> str:
    """A value as an error message shows it: short, with its type visible."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _refuse(value: Any) -> Any:
    if value is None:
        return None
    raise PydanticCustomError("unsupported", UNSUPPORTED)


#: A field that exists in Karmada's API but that Flotilla does not implement. Modelled
#: rather than left to ``extra="forbid"`` so the user reads "not supported by Flotilla"
#: instead of "unknown field" and knows the YAML is not misspelt.
Unsupported = Annotated[Any, PlainValidator(_refuse)]


def karmada_default_only(*allowed: Any) -> Callable[[Any], Any]:
    """A validator for a Karmada field Flotilla accepts only at Karmada's default value.

    Karmada's API server writes defaults (``schedulerName: default-scheduler``,
    ``conflictResolution: Abort``, ``preemption: Never``) into every stored policy, so a
    policy exported from a Karmada control plane carries them; they mean exactly what
    Flotilla does anyway. Any other value asks for behaviour Flotilla lacks.
    """

    def check(value: Any) -> Any:
        if value is None or any(value is a or (value == a and type(value) is type(a))
                                for a in allowed):
            return value
        raise PydanticCustomError(
            "unsupported", "value {got} is not supported by Flotilla (only {allowed})",
            {"got": show_value(value), "allowed": " or ".join(repr(a) for a in allowed)},
        )

    return check
