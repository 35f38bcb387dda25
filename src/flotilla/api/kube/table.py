"""``meta.k8s.io`` Table responses: what ``kubectl get`` prints, with the columns of
``flotilla get`` (`flotilla.resources.columns`, written once for both).

kubectl asks for a Table in its Accept header (``application/json;as=Table;v=v1;
g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json``)
on gets, lists and watches, and prints the cells as they come; so a server-side column
is all it takes for kubectl to show READY, REGION or the per-cluster replicas.

Columns: Name, the kind's narrow columns, Age, then its ``-o wide`` ones (priority 1,
which kubectl shows only with ``-o wide``). kubectl adds NAMESPACE (``-A``) and LABELS
(``--show-labels``) itself, from each row's object: PartialObjectMetadata by default
(``includeObject=Metadata``), the whole object with ``includeObject=Object`` (what
``--sort-by`` asks for) or nothing with ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flotilla.api.errors import BadRequestError
from flotilla.resources import columns
from flotilla.resources.ages import age
from flotilla.resources.kinds import Kind

Object = dict[str, Any]

GROUP = "meta.k8s.io"
#: The Table versions served, in the order they are preferred when both are accepted.
VERSIONS = ("v1", "v1beta1")
INCLUDE_OBJECT = ("Metadata", "Object", "None")


def _media_params(media_range: str) -> tuple[str, dict[str, str]]:
    kind, *params = (p.strip() for p in media_range.split(";"))
    out = {}
    for p in params:
        key, _, value = p.partition("=")
        out[key.strip().lower()] = value.strip().strip('"')
    return kind.lower(), out


def table_version(accept: str | None) -> str | None:
    """The Table apiVersion (``meta.k8s.io/v1``) ``accept`` asks for, or None for the
    plain object. The first Table range served wins (kubectl lists v1 before v1beta1);
    a Table of an unserved version is passed over, as kube-apiserver does."""
    for media_range in (accept or "").split(","):
        media, params = _media_params(media_range)
        if media not in ("application/json", "application/*", "*/*"):
            continue
        if params.get("as") == "Table" and params.get("g") == GROUP \
                and params.get("v") in VERSIONS:
            return f"{GROUP}/{params['v']}"
    return None


def include_object(value: str | None) -> str:
    """``includeObject``: what each row carries; 400 on anything else."""
    if not value:
        return "Metadata"
    if value not in INCLUDE_OBJECT:
        raise BadRequestError(
            f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}, got {value!r}")
    return value


def _definition(name: str, priority: int, description: str, fmt: str = "") -> Object:
    return {"name": name, "type": "string", "format": fmt, "description": description,
            "priority": priority}


def _row_object(obj: Object, api_version: str, include: str) -> Object | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version,
            "metadata": obj.get("metadata") or {}}


def table(kind: Kind, objects: Sequence[Object], *, api_version: str, include: str,
          metadata: Object | None = None) -> Object:
    """A Table of ``objects`` (already enriched: `columns.enrich`)."""
    cols = columns.all_columns(kind.kind, objects)
    narrow = [c for c in cols if not c.wide]
    wide = [c for c in cols if c.wide]
    definitions = [_definition("Name", 0, f"Name of the {kind.kind}.", "name")]
    definitions += [_definition(c.header, 0, c.header) for c in narrow]
    definitions.append(_definition("Age", 0, "Time since the object was created."))
    definitions += [_definition(c.header, 1, c.header) for c in wide]
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        cells = [str(meta.get("name") or "")]
        cells += [columns.cell_text(c, obj) for c in narrow]
        cells.append(age(meta.get("creationTimestamp")))
        cells += [columns.cell_text(c, obj) for c in wide]
        row: Object = {"cells": cells}
        carried = _row_object(obj, api_version, include)
        if carried is not None:
            row["object"] = carried
        rows.append(row)
    return {"kind": "Table", "apiVersion": api_version, "metadata": metadata or {},
            "columnDefinitions": definitions, "rows": rows}


def bookmark_table(api_version: str, resource_version: str) -> Object:
    """A watch BOOKMARK as a Table: no columns, no rows (kubectl prints nothing for it),
    only the revision."""
    return {"kind": "Table", "apiVersion": api_version,
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": [], "rows": []}
