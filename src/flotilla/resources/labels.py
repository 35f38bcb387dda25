"""Kubernetes label selectors: the string form (``a=b,c in (x,y),!d``) and the
structured form (``matchLabels`` / ``matchExpressions``), both compiled to one `Selector`.

One implementation serves the store's list filter, the scheduler's cluster affinity and
the Service → pod match, so that they can never disagree about what matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")

# A label key: optional DNS prefix, then a name of up to 63 characters.
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message names the offending part."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if not present:
            return False
        try:
            have, want = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.operator == "Gt" else have < want


@dataclass(frozen=True, slots=True)
class Selector:
    """A conjunction of requirements. The empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.operator == "Exists":
                parts.append(r.key)
            elif r.operator == "DoesNotExist":
                parts.append("!" + r.key)
            elif r.operator in ("In", "NotIn") and len(r.values) == 1:
                parts.append(f"{r.key}{'=' if r.operator == 'In' else '!='}{r.values[0]}")
            elif r.operator in ("Gt", "Lt"):
                parts.append(f"{r.key}{'>' if r.operator == 'Gt' else '<'}{r.values[0]}")
            else:
                parts.append(f"{r.key} {r.operator.lower()} ({','.join(r.values)})")
        return ",".join(parts)


EVERYTHING = Selector()


def _check_key(key: str, where: str) -> str:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise SelectorError(f"{where}: invalid label key {key!r}")
    return key


def _check_value(value: str, where: str) -> str:
    if not _VALUE.match(value) or len(value) > 63:
        raise SelectorError(f"{where}: invalid label value {value!r}")
    return value


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^(?P<key>[^\s!=<>()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_CMP_RE = re.compile(r"^(?P<key>[^\s!=<>()]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<value>[^\s!=<>()]*)$")


def parse_selector(text: str | None) -> Selector:
    """Parse the Kubernetes string form, e.g. ``app=shop,tier in (web,api),!canary``."""
    if text is None or not text.strip():
        return EVERYTHING
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            values = tuple(
                _check_value(v.strip(), part) for v in m["values"].split(",") if v.strip()
            )
            op: Operator = "In" if m["op"] == "in" else "NotIn"
            reqs.append(Requirement(_check_key(m["key"], part), op, values))
        elif m := _CMP_RE.match(part):
            key, sym, value = _check_key(m["key"], part), m["op"], m["value"]
            if sym in (">", "<"):
                if not value.lstrip("-").isdigit():
                    raise SelectorError(f"{part}: {sym} needs an integer, got {value!r}")
                reqs.append(Requirement(key, "Gt" if sym == ">" else "Lt", (value,)))
            else:
                _check_value(value, part)
                reqs.append(Requirement(key, "NotIn" if sym == "!=" else "In", (value,)))
        elif part.startswith("!"):
            reqs.append(Requirement(_check_key(part[1:].strip(), part), "DoesNotExist"))
        else:
            reqs.append(Requirement(_check_key(part, part), "Exists"))
    return Selector(tuple(reqs))


def selector_from_dict(spec: Mapping[str, Any] | None, where: str = "selector") -> Selector:
    """Compile a structured LabelSelector (``matchLabels`` + ``matchExpressions``).

    ``None`` or ``{}`` matches everything, as in Kubernetes.
    """
    if not spec:
        return EVERYTHING
    reqs: list[Requirement] = []
    for key, value in sorted((spec.get("matchLabels") or {}).items()):
        reqs.append(
            Requirement(
                _check_key(str(key), f"{where}.matchLabels"),
                "In",
                (_check_value(str(value), f"{where}.matchLabels.{key}"),),
            )
        )
    for i, expr in enumerate(spec.get("matchExpressions") or []):
        path = f"{where}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            raise SelectorError(f"{path}: expected an object")
        op = expr.get("operator")
        if op not in _OPERATORS:
            raise SelectorError(f"{path}.operator: expected one of {', '.join(_OPERATORS)}")
        values = tuple(str(v) for v in (expr.get("values") or []))
        if op in ("In", "NotIn") and not values:
            raise SelectorError(f"{path}.values: {op} needs at least one value")
        if op in ("Exists", "DoesNotExist") and values:
            raise SelectorError(f"{path}.values: {op} takes no values")
        if op in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
            raise SelectorError(f"{path}.values: {op} needs exactly one integer")
        reqs.append(Requirement(_check_key(str(expr.get("key", "")), f"{path}.key"), op, values))
    return Selector(tuple(reqs))


def selector_from_labels(labels: Mapping[str, str]) -> Selector:
    """The equality selector a Service's ``spec.selector`` is."""
    return Selector(tuple(Requirement(k, "In", (v,)) for k, v in sorted(labels.items())))
