"""Validation seam: every object entering the API goes through `validate_object`.

Errors name the field path (``spec.placement.clusterAffinity.foo``,
``spec.template.spec.containers[0].ports[1].containerPort``) so a user can find the line
in their YAML, and say what was expected in plain words. The models themselves live in
`flotilla.resources.models`; this module turns pydantic's errors into `FieldError`s.

The models are built once at import; pydantic compiles each into a validator, so a
write costs one pass over the object (see docs/components/resources.md, Benchmarks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flotilla.resources.kinds import Kind, UnknownKind, for_api_version
from flotilla.resources.models import MODELS
from flotilla.resources.models.common import show_value
from flotilla.resources.models.meta import SERVER_SET_FIELDS

__all__ = [
    "FieldError",
    "InvalidObject",
    "UnknownKind",
    "kind_of",
    "model_for",
    "parse_as",
    "parse_typed",
    "validate_object",
]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidObject(ValueError):
    """One or more field errors; ``str()`` lists them all, one per line."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def kind_of(obj: Any) -> Kind:
    """The served `Kind` of an object, from its ``apiVersion`` and ``kind``.

    Raises `InvalidObject` when either is missing and `UnknownKind` (whose message lists
    what is served) when the pair is not one Flotilla serves.
    """
    if not isinstance(obj, dict):
        raise InvalidObject([FieldError("", f"expected an object, got {show_value(obj)}")])
    errors = [
        FieldError(f, "required field is missing" if obj.get(f) is None
                   else f"expected a string, got {show_value(obj[f])}")
        for f in ("apiVersion", "kind") if not isinstance(obj.get(f), str)
    ]
    if errors:
        raise InvalidObject(errors)
    return for_api_version(obj["apiVersion"], obj["kind"])


def model_for(kind: Kind | str) -> type[BaseModel]:
    return MODELS[kind if isinstance(kind, str) else kind.kind]


def validate_object(obj: dict[str, Any]) -> Kind:
    """Check an object a user wrote; return its `Kind` or raise naming every problem.

    Server-set metadata (uid, resourceVersion, generation, timestamps) is ignored: the
    API server overwrites it, and a user re-applying a fetched object must not fail on
    it. The object itself is not modified.
    """
    kind = kind_of(obj)
    meta = obj.get("metadata")
    data = dict(obj)
    if meta is None:
        data["metadata"] = {}
    elif isinstance(meta, dict):
        data["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_SET_FIELDS}
    _validate(model_for(kind), data, kind)
    return kind


def parse_typed(obj: dict[str, Any]) -> BaseModel:
    """The typed model of a (stored) object, e.g. a `PropagationPolicy` instance."""
    kind = kind_of(obj)
    return _validate(model_for(kind), obj, kind)


def parse_as(obj: dict[str, Any], model: type[M]) -> M:
    """`parse_typed` for a caller that knows the model: ``parse_as(o, Cluster).spec``."""
    kind = kind_of(obj)
    if model_for(kind) is not model:
        raise InvalidObject([FieldError("kind", f"expected {model.__name__}, got {kind.kind}")])
    return _validate(model, obj, kind)


def _validate(model: type[M], data: dict[str, Any], kind: Kind) -> M:
    group = data["apiVersion"].rpartition("/")[0]
    try:
        return model.model_validate(data, context={"group": group, "kind": kind.kind})
    except ValidationError as e:
        raise InvalidObject(list(_field_errors(e.errors()))) from None


# --- turning pydantic errors into field errors -------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # the error is about a map key itself, reported at the map
            continue
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
}


def _message(err: ErrorDetails) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "invalid_key":
        return f"field names must be strings, got {show_value(value)}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {show_value(value)}"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected')}, got {show_value(value)}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, got {show_value(value)}"
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}, got {show_value(value)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}, got {show_value(value)}"
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else \
            f"must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        if pattern == "^/":
            return f"must start with '/', got {show_value(value)}"
        return f"invalid value {show_value(value)}: must match {pattern}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    return err["msg"]


def _field_errors(errors: Iterable[ErrorDetails]) -> Iterable[FieldError]:
    seen: set[FieldError] = set()
    for err in errors:
        fe = FieldError(_path(tuple(err["loc"])), _message(err))
        if fe not in seen:
            seen.add(fe)
            yield fe
