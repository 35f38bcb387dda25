"""Which PropagationPolicy governs a template, by Karmada's rules.

Karmada picks, among the policies whose ``resourceSelectors`` match a resource:

1. a namespaced PropagationPolicy over any ClusterPropagationPolicy;
2. then the higher explicit ``spec.priority`` (default 0);
3. then the more specific match: a selector naming the resource (name) over one
   matching its labels (labelSelector) over one matching every resource of the kind;
4. then the policy name, alphabetically, so the choice is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flotilla.resources.labels import SelectorError, selector_from_dict

Object = dict[str, Any]

#: Specificity of a selector match (Karmada's "implicit priority").
BY_NAME, BY_LABELS, BY_KIND = 3, 2, 1


def selector_match(selector: Mapping[str, Any], obj: Object, policy_namespace: str) -> int:
    """How specifically ``selector`` matches ``obj`` (0: it does not)."""
    meta = obj.get("metadata") or {}
    if selector.get("apiVersion") != obj.get("apiVersion") or selector.get("kind") != obj.get(
            "kind"):
        return 0
    namespace = selector.get("namespace") or policy_namespace
    if namespace and namespace != (meta.get("namespace") or ""):
        return 0
    if selector.get("name"):
        return BY_NAME if selector["name"] == meta.get("name") else 0
    if selector.get("labelSelector") is not None:
        try:
            sel = selector_from_dict(selector["labelSelector"])
        except SelectorError:
            return 0
        return BY_LABELS if sel.matches(meta.get("labels") or {}) else 0
    return BY_KIND


def policy_match(policy: Object, obj: Object) -> int:
    """The best specificity any of the policy's selectors reaches for ``obj``."""
    meta = policy.get("metadata") or {}
    namespace = str(meta.get("namespace") or "") if policy.get("kind") == \
        "PropagationPolicy" else ""
    selectors = (policy.get("spec") or {}).get("resourceSelectors") or []
    return max((selector_match(s, obj, namespace) for s in selectors), default=0)


@dataclass(frozen=True, slots=True)
class Match:
    policy: Object
    specificity: int

    @property
    def namespaced(self) -> bool:
        return self.policy.get("kind") == "PropagationPolicy"

    def sort_key(self) -> tuple[int, int, int, str]:
        spec = self.policy.get("spec") or {}
        return (0 if self.namespaced else 1, -int(spec.get("priority") or 0),
                -self.specificity, str(self.policy["metadata"]["name"]))


def best_policy(obj: Object, policies: Iterable[Object]) -> Object | None:
    """The governing policy among ``policies`` (namespaced and cluster-wide), or None."""
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    matches = []
    for p in policies:
        meta = p.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        if p.get("kind") == "PropagationPolicy" and meta.get("namespace") != namespace:
            continue
        level = policy_match(p, obj)
        if level:
            matches.append(Match(p, level))
    if not matches:
        return None
    return min(matches, key=Match.sort_key).policy
