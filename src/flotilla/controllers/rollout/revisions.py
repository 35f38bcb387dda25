"""The rules over a Deployment's revisions: when a pod template becomes a new revision,
which ones the history keeps, and which template a pinned cluster renders.

The annotation format itself (keys, encoding of history and pins) is shared with the CLI
and lives in `flotilla.resources.rollout_state`; this module holds the decisions only
the control plane makes. A cluster without a pin runs the template as it is now, which
is what happens when no RolloutPolicy governs it.
"""

from __future__ import annotations

import copy

from flotilla.client.base import Object
from flotilla.resources.rollout_state import (
    CHANGE_CAUSE,
    CHANGED_BY,
    Revision,
    find,
    history,
    pins,
    pod_template,
    template_hash,
)

DEFAULT_LIMIT = 10


def next_history(revisions: list[Revision], template: Object, now: str,
                 limit: int = DEFAULT_LIMIT, keep: frozenset[int] = frozenset()
                 ) -> list[Revision] | None:
    """The history once ``template`` is recorded, or None when it is already the latest.

    Going back to an older pod template (an undo) makes it the newest revision under a
    new number, so "the previous revision" always means the one that ran before. Unlike
    Kubernetes the older entry stays: the history reads as what happened, and a cluster
    still pinned to it keeps its template.

    Beyond ``limit`` the oldest go, except those in ``keep`` (revisions clusters are
    pinned to, and the stable one a failure goes back to): dropping one would let its
    clusters render the current template.
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
