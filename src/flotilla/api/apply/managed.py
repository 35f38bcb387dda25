"""Field managers: server-side apply and the ``Update`` records of ordinary writes,
kept in ``metadata.managedFields`` as Kubernetes keeps them.

* An ordinary write (POST, PUT, PATCH) by manager M: M now owns every field the write
  set or changed; other managers lose those fields; fields the write removed leave
  every manager (`track_update`).
* An apply by M (`server_side_apply`): a field M applies that another manager owns
  with a different value is a conflict, refused unless forced (then M takes it over);
  M's applied fields merge into the object; fields M applied before and no longer
  applies are removed, unless another manager owns them too.

Pure functions: the route does the reading, validating and compare-and-set writing.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from flotilla.api.apply.fieldset import (
    FieldSet,
    Path,
    decode,
    encode,
    fields_of,
    remove_path,
    value_at,
)
from flotilla.api.patch.schema import GENERIC, Schema, schema_for
from flotilla.api.patch.strategic import strategic_merge_patch

APPLY = "Apply"
UPDATE = "Update"


@dataclass(frozen=True, slots=True)
class Entry:
    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet
    subresource: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version, "time": self.time,
                               "fieldsType": "FieldsV1", "fieldsV1": encode(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


@dataclass(frozen=True, slots=True)
class Conflict:
    manager: str
    path: Path

    @property
    def field(self) -> str:
        """The field as Kubernetes names it in a conflict: ``.spec.replicas``,
        ``.spec.template.spec.containers[name="web"].image``."""
        out = ""
        for token in self.path:
            if token.startswith("f:"):
                out += "." + token[2:]
            elif token.startswith("k:"):
                (key, ident), = json.loads(token[2:]).items()
                out += f"[{key}={json.dumps(ident)}]"
            elif token.startswith("v:"):
                out += f"[={token[2:]}]"
        return out


class ApplyConflicts(Exception):
    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = conflicts
        super().__init__(f"{len(conflicts)} conflicts")


def schema_of(obj: dict[str, Any]) -> Schema:
    return schema_for(str(obj.get("kind", ""))) or GENERIC


def entries_of(obj: dict[str, Any] | None) -> list[Entry]:
    meta = (obj or {}).get("metadata") or {}
    raw = meta.get("managedFields") if isinstance(meta, dict) else None
    out: list[Entry] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("manager"), str):
            continue
        out.append(Entry(item["manager"], str(item.get("operation", UPDATE)),
                         str(item.get("apiVersion", "")), str(item.get("time", "")),
                         decode(item.get("fieldsV1")), str(item.get("subresource", ""))))
    return out


def set_entries(obj: dict[str, Any], entries: list[Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    kept = [e.to_json() for e in entries if e.fields]
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def _changed(old: dict[str, Any] | None, new: dict[str, Any], schema: Schema) -> FieldSet:
    new_fields = fields_of(new, schema)
    if old is None:
        return new_fields
    old_fields = fields_of(old, schema)
    return frozenset(p for p in new_fields
                     if p not in old_fields or value_at(old, p, schema) != value_at(new, p, schema))


def track_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str,
                 api_version: str, now: str) -> None:
    """Record an ordinary write of ``new`` (over ``old``, None on create) by ``manager``
    in ``new``'s managedFields. The stored entries are the truth: whatever managedFields
    the client sent back is ignored."""
    schema = schema_of(new)
    entries = entries_of(old)
    changed = _changed(old, new, schema)
    removed = (fields_of(old, schema) - fields_of(new, schema)) if old is not None \
        else frozenset()
    out: list[Entry] = []
    mine: Entry | None = None
    for e in entries:
        if e.manager == manager and e.operation == UPDATE and not e.subresource:
            mine = e
            continue
        out.append(Entry(e.manager, e.operation, e.api_version, e.time,
                         e.fields - changed - removed, e.subresource))
    if mine is not None:
        fields = (mine.fields - removed) | changed
        when = now if changed else mine.time
        out.append(Entry(manager, UPDATE, api_version, when, fields))
    elif changed:
        out.append(Entry(manager, UPDATE, api_version, now, changed))
    set_entries(new, out)


def server_side_apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str,
                      *, force: bool, now: str) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` to ``live`` (None: it does not
    exist yet), with its managedFields; raises `ApplyConflicts` unless ``force``."""
    schema = schema_of(config)
    current = copy.deepcopy(live) if live is not None else {}
    applied = fields_of(config, schema)
    entries = entries_of(live)
    conflicts: list[Conflict] = []
    for e in entries:
        if (e.manager == manager and e.operation == APPLY) or e.subresource:
            continue
        for path in sorted(applied & e.fields):
            if path[-1] == ".":
                continue
            if value_at(current, path, schema) != value_at(config, path, schema):
                conflicts.append(Conflict(e.manager, path))
    if conflicts and not force:
        raise ApplyConflicts(conflicts)
    taken = frozenset(c.path for c in conflicts)
    mine = next((e for e in entries if e.manager == manager and e.operation == APPLY
                 and not e.subresource), None)
    others = [Entry(e.manager, e.operation, e.api_version, e.time, e.fields - taken,
                    e.subresource)
              for e in entries if e is not mine]
    owned_by_others = frozenset().union(*(e.fields for e in others)) if others \
        else frozenset()
    before = mine.fields if mine is not None else frozenset()
    dropped = before - applied - owned_by_others
    # Whole list items first (found by their key), then the remaining fields.
    for path in sorted(dropped, key=lambda p: (p[-1] != ".", len(p))):
        remove_path(current, path, schema)
    body = {k: v for k, v in config.items() if k not in ("apiVersion", "kind")}
    meta = body.get("metadata")
    if isinstance(meta, dict):
        body["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    merged: dict[str, Any] = strategic_merge_patch(current, body, schema)
    merged["apiVersion"] = config.get("apiVersion", merged.get("apiVersion"))
    merged["kind"] = config.get("kind", merged.get("kind"))
    unchanged = live is not None and mine is not None and mine.fields == applied \
        and _same(live, merged)
    when = mine.time if unchanged and mine is not None else now
    api_version = str(config.get("apiVersion", ""))
    entry = Entry(manager, APPLY, api_version, when, applied)
    # The manager's entry keeps its place, so an unchanged apply leaves managedFields
    # exactly as stored (and is not written at all).
    position = entries.index(mine) if mine is not None else len(others)
    set_entries(merged, [*others[:position], entry, *others[position:]])
    return merged


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        o = copy.deepcopy(o)
        meta = o.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        return o
    return strip(a) == strip(b)
