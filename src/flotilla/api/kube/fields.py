"""``fieldSelector`` on lists and watches, as Kubernetes parses and applies it.

kubectl relies on it more than people type it: ``kubectl wait`` and ``kubectl delete
--wait`` watch one object with ``metadata.name=NAME``, and ``kubectl describe`` finds an
object's Events with ``involvedObject.name=...,involvedObject.namespace=...,
involvedObject.kind=...,involvedObject.uid=...``. So every kind selects on
``metadata.name`` and ``metadata.namespace``, and Events on their ``involvedObject``
(plus ``reason`` and ``type``, as kube-apiserver does); any other field is refused with
a 400 naming it, as kube-apiserver refuses a field label it does not index, rather than
silently matching everything.

Syntax: comma-joined terms ``field=value``, ``field==value`` or ``field!=value``; a
backslash escapes ``,``, ``=``, ``!`` and itself in a value. A missing field reads as
"" (``involvedObject.namespace=`` selects the events of cluster-scoped objects).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flotilla.api.errors import BadRequestError
from flotilla.resources.kinds import Kind

Object = dict[str, Any]
Getter = Callable[[Object], str]


def _path(*keys: str) -> Getter:
    def get(obj: Object) -> str:
        cur: Any = obj
        for key in keys:
            cur = cur.get(key) if isinstance(cur, dict) else None
        return "" if cur is None else str(cur)
    return get


#: The fields every kind selects on.
COMMON: dict[str, Getter] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}
#: Per kind, the fields beyond `COMMON`.
BY_KIND: dict[str, dict[str, Getter]] = {
    "Event": {
        **{f"involvedObject.{f}": _path("involvedObject", f)
           for f in ("kind", "name", "namespace", "uid", "apiVersion")},
        "reason": _path("reason"),
        "type": _path("type"),
    },
}


def supported(kind: Kind) -> dict[str, Getter]:
    return {**COMMON, **BY_KIND.get(kind.kind, {})}


@dataclass(frozen=True, slots=True)
class Requirement:
    field: str
    value: str
    negated: bool
    get: Getter

    def matches(self, obj: Object) -> bool:
        return (self.get(obj) == self.value) != self.negated


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[Requirement, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def matches(self, obj: Object) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def filter(self, objects: Iterable[Object]) -> list[Object]:
        return [o for o in objects if self.matches(o)]


def _split_unescaped(text: str, sep: str) -> list[str]:
    """``text`` split at each ``sep`` not preceded by a backslash (escapes kept)."""
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if escaped:
        raise BadRequestError(f"fieldSelector: {text!r} ends with a lone backslash")
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=!":
                raise BadRequestError(f"fieldSelector: invalid escape sequence \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=!":
            raise BadRequestError(f"fieldSelector: unescaped {ch!r} in value {value!r}")
        else:
            out.append(ch)
    return "".join(out)


def _term(term: str) -> tuple[str, str, bool]:
    """``(field, raw value, negated)`` of one ``a=b``/``a==b``/``a!=b`` term."""
    for i, ch in enumerate(term):
        if ch == "\\":
            break  # an escape can only be in the value, after the operator
        if ch == "!" and term[i + 1:i + 2] == "=":
            return term[:i], term[i + 2:], True
        if ch == "=":
            rest = term[i + 2:] if term[i + 1:i + 2] == "=" else term[i + 1:]
            return term[:i], rest, False
    raise BadRequestError(
        f"fieldSelector: invalid term {term!r}: expected field=value, field==value or "
        "field!=value")


def parse_field_selector(text: str | None, kind: Kind) -> FieldSelector:
    """The selector in ``text`` for ``kind``; `BadRequestError` (400) on bad syntax or a
    field ``kind`` does not select on, naming it and the ones it does."""
    if not text or not text.strip():
        return FieldSelector()
    fields = supported(kind)
    requirements = []
    for term in _split_unescaped(text, ","):
        if not term.strip():
            continue
        field, raw, negated = _term(term)
        field = field.strip()
        get = fields.get(field)
        if get is None:
            raise BadRequestError(
                f'field label not supported: "{field}" (fieldSelector on {kind.plural} '
                f"supports {', '.join(sorted(fields))})",
                {"kind": kind.plural, "causes": [
                    {"reason": "FieldValueNotSupported", "field": field,
                     "message": f"field label not supported: {field}"}]})
        requirements.append(Requirement(field, _unescape(raw), negated, get))
    return FieldSelector(tuple(requirements))
