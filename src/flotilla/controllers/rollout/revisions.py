"""Revisions of a Deployment's pod template, and the per-cluster pins the renderer honours.

Both live as JSON annotations on the template's ResourceBinding, not on the Deployment:
the binding is the control plane's own object (a user's ``apply`` of the Deployment would
wipe annotations there), every controller that touches it merges rather than replaces
metadata, and the renderer already reads it. A revision is a pod template plus who and
when; the pins map a cluster to the revision it must run. A cluster without a pin runs
the template as it is now, which is what happens when no RolloutPolicy governs it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flotilla.client.base import Object

REVISIONS = "rollout.flotilla.io/revisions"
PINS = "rollout.flotilla.io/pins"
#: Stamped by the API server on every write with the caller's token name (see
#: flotilla.api.routes.stamp_author), shown in history.
CHANGED_BY = "flotilla.io/changed-by"
CHANGE_CAUSE = "kubernetes.io/change-cause"
DEFAULT_LIMIT = 10


@dataclass(frozen=True, slots=True)
class Revision:
    number: int
    hash: str
    template: Object
    changed_by: str
    changed_at: str
    cause: str

    def to_json(self) -> Object:
        return {"revision": self.number, "hash": self.hash, "template": self.template,
                "changedBy": self.changed_by, "changedAt": self.changed_at,
                "cause": self.cause}

    @staticmethod
    def from_json(data: Object) -> Revision:
        return Revision(int(data["revision"]), str(data["hash"]), dict(data["template"]),
                        str(data.get("changedBy") or ""), str(data.get("changedAt") or ""),
                        str(data.get("cause") or ""))


def pod_template(template: Object) -> Object:
    return dict(((template.get("spec") or {}).get("template")) or {})


def template_hash(pod: Object) -> str:
    """Stable across key order, so an unchanged template never makes a new revision."""
    raw = json.dumps(pod, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:10]


def _annotation(obj: Object, key: str) -> Any:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None  # a hand-edited, broken annotation reads as absent, never as a crash


def history(binding: Object) -> list[Revision]:
    data = _annotation(binding, REVISIONS)
    if not isinstance(data, list):
        return []
    out = []
    for item in data:
        try:
            out.append(Revision.from_json(item))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda r: r.number)


def set_history(binding: Object, revisions: list[Revision]) -> None:
    annotations = binding["metadata"].setdefault("annotations", {})
    annotations[REVISIONS] = json.dumps([r.to_json() for r in revisions],
                                        separators=(",", ":"))


def next_history(revisions: list[Revision], template: Object, now: str,
                 limit: int = DEFAULT_LIMIT, keep: frozenset[int] = frozenset()
                 ) -> list[Revision] | None:
    """The history once ``template`` is recorded, or None when it is already the latest.

    Going back to an older pod template (an undo) makes it the newest revision under a
    new number, so "the previous revision" always means the one that ran before. Unlike
    Kubernetes the older entry stays: the history reads as what happened, and a cluster
    still pinned to it keeps its template.

    Beyond ``limit`` the oldest go, except those in ``keep`` (revisions clusters are
    pinned to): dropping one would let its clusters render the current template.
    """
    pod = pod_template(template)
    digest = template_hash(pod)
    if revisions and revisions[-1].hash == digest:
        return None
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    number = (revisions[-1].number + 1) if revisions else 1
    new = Revision(number, digest, copy.deepcopy(pod),
                   str(annotations.get(CHANGED_BY) or "unknown"), now,
                   str(annotations.get(CHANGE_CAUSE) or ""))
    out = [*revisions, new]
    while len(out) > max(limit, 1):
        victim = next((r for r in out[:-1] if r.number not in keep), None)
        if victim is None:
            break
        out.remove(victim)
    return out


def find(revisions: list[Revision], number: int) -> Revision | None:
    return next((r for r in revisions if r.number == number), None)


def pins(binding: Object) -> dict[str, int]:
    data = _annotation(binding, PINS)
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def set_pins(binding: Object, value: dict[str, int] | None) -> bool:
    """Write (or with None remove) the pins; True when that changed the binding."""
    annotations = binding["metadata"].setdefault("annotations", {})
    if value is None:
        return annotations.pop(PINS, None) is not None
    text = json.dumps(dict(sorted(value.items())), separators=(",", ":"))
    if annotations.get(PINS) == text:
        return False
    annotations[PINS] = text
    return True


def pinned_template(binding: Object, template: Object, cluster: str) -> Object:
    """The template ``cluster`` must run: the current one, or with the pod template of
    the revision the rollout controller pinned it to (the renderer's only hook)."""
    number = pins(binding).get(cluster)
    if number is None:
        return template
    revision = find(history(binding), number)
    if revision is None or revision.hash == template_hash(pod_template(template)):
        return template
    out = copy.deepcopy(template)
    out.setdefault("spec", {})["template"] = copy.deepcopy(revision.template)
    return out
