"""Reading ``-f`` arguments: files, directories and stdin, multi-document YAML or JSON.

Everything is read and validated before the first API call, so a typo in the fifth
document of a file fails the whole ``apply`` with nothing half-applied, and the message
points at the file, the document and the field (``shop.yaml: document 5 (Deployment
"web"): spec.replicas: ...``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flotilla.resources.kinds import Kind, UnknownKind
from flotilla.resources.validation import InvalidObject, validate_object

_SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(Exception):
    """A document that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    obj: dict[str, Any]
    kind: Kind
    #: "file.yaml: document 2" -- for error messages.
    origin: str

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")

    @property
    def ref(self) -> str:
        """``kind/name`` as printed by apply and delete."""
        return f"{self.kind.kind.lower()}/{self.name}"


def expand_paths(args: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(display name, text) for each ``-f`` argument; a directory yields its manifest
    files in name order (not recursive), ``-`` reads stdin once."""
    for arg in args:
        if arg == "-":
            yield "<stdin>", sys.stdin.read()
            continue
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _SUFFIXES)
            if not files:
                raise ManifestError(f"{arg}: no .yaml, .yml or .json files in this directory")
        else:
            files = [path]
        for f in files:
            try:
                yield str(f), f.read_text()
            except FileNotFoundError:
                raise ManifestError(f"{f}: no such file or directory") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError(f"{f}: cannot read: {exc}") from None


def parse_documents(source: str, text: str) -> Iterator[tuple[str, Any]]:
    """(origin, document) for every non-empty document; ``kind: List`` is expanded."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{source}:{where}: invalid YAML: {problem}") from None
    index = 0
    for doc in docs:
        if doc is None:
            continue  # "---" at the end, or an empty file
        index += 1
        origin = f"{source}: document {index}"
        if isinstance(doc, dict) and doc.get("kind") == "List" and \
                isinstance(doc.get("items"), list):
            for j, item in enumerate(doc["items"]):
                yield f"{origin} item {j}", item
        else:
            yield origin, doc


def load(paths: Iterable[str], namespace: str | None = None) -> list[Manifest]:
    """Read, default and validate every document; raise `ManifestError` on the first
    problem. ``namespace`` (from ``-n``) fills in a missing namespace and must agree with
    one that is set, as in kubectl."""
    out: list[Manifest] = []
    for source, text in expand_paths(paths):
        for origin, doc in parse_documents(source, text):
            out.append(_check(origin, doc, namespace))
    if not out:
        raise ManifestError("no objects found in " + ", ".join(paths))
    return out


def _check(origin: str, doc: Any, namespace: str | None) -> Manifest:
    if not isinstance(doc, dict):
        raise ManifestError(f"{origin}: expected an object with apiVersion and kind, "
                            f"got {type(doc).__name__}")
    label = origin
    kind_name, name = doc.get("kind"), (doc.get("metadata") or {}).get("name") \
        if isinstance(doc.get("metadata"), dict) else None
    if kind_name and name:
        label = f'{origin} ({kind_name} "{name}")'
    try:
        kind = validate_object(doc)
    except UnknownKind as exc:
        raise ManifestError(f"{label}: {exc}") from None
    except InvalidObject as exc:
        raise ManifestError(f"{label}: {exc}") from None
    meta = doc.setdefault("metadata", {})
    if kind.namespaced:
        given = meta.get("namespace")
        if namespace and given and given != namespace:
            raise ManifestError(
                f'{label}: metadata.namespace is "{given}" but -n says "{namespace}"')
        if not given:
            meta["namespace"] = namespace or "default"
    return Manifest(doc, kind, origin)
