"""OverridePolicy rules applied to one template for one cluster (Karmada semantics).

Rules apply in order: ClusterOverridePolicies first, then OverridePolicies, each set
sorted by name, and inside a policy its ``overrideRules`` in order, so that a namespaced
policy written later has the last word, as in Karmada.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonpatch

from flotilla.controllers.placement.matching import policy_match
from flotilla.scheduler import ClusterInfo
from flotilla.scheduler.compile import PlacementError, compile_affinity

Object = dict[str, Any]


class OverrideError(ValueError):
    """An override that cannot apply to this template; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Applied:
    policy: str
    rule: int
    overriders: tuple[str, ...]


def _target_matches(target: Any, cluster: ClusterInfo, where: str) -> bool:
    if not target:
        return True  # no targetCluster: every cluster
    try:
        return compile_affinity(target, where).matches(cluster)
    except PlacementError as exc:
        raise OverrideError(str(exc)) from None


def rules_of(policy: Object) -> list[Object]:
    spec = policy.get("spec") or {}
    if spec.get("overrideRules"):
        return list(spec["overrideRules"])
    if spec.get("overriders"):  # the older spec-level form
        return [{"targetCluster": spec.get("targetCluster"), "overriders": spec["overriders"]}]
    return []


def ordered(policies: Iterable[Object]) -> list[Object]:
    return sorted(policies, key=lambda p: (0 if p.get("kind") == "ClusterOverridePolicy"
                                           else 1, p["metadata"]["name"]))


def apply_overrides(template: Object, cluster: ClusterInfo, policies: Iterable[Object]
                    ) -> tuple[Object, list[Applied]]:
    """The template as ``cluster`` should run it, and which rules changed it."""
    out = copy.deepcopy(template)
    applied: list[Applied] = []
    for policy in ordered(policies):
        if not policy_match(policy, template):
            continue
        name = policy["metadata"]["name"]
        for i, rule in enumerate(rules_of(policy)):
            where = f"{policy.get('kind')} {name}: overrideRules[{i}]"
            if not _target_matches(rule.get("targetCluster"), cluster,
                                   f"{where}.targetCluster"):
                continue
            done = _apply_overriders(out, rule.get("overriders") or {}, where)
            if done:
                applied.append(Applied(name, i, tuple(done)))
    return out, applied


def _apply_overriders(obj: Object, overriders: Object, where: str) -> list[str]:
    done = []
    for kind in ("imageOverrider", "commandOverrider", "argsOverrider", "labelsOverrider",
                 "annotationsOverrider", "plaintext"):
        items = overriders.get(kind) or []
        for j, item in enumerate(items):
            try:
                _APPLY[kind](obj, item)
            except (KeyError, IndexError, TypeError, ValueError,
                    jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise OverrideError(f"{where}.overriders.{kind}[{j}]: {exc}") from None
            done.append(kind)
    return done


def _containers(obj: Object) -> list[Object]:
    spec = obj.get("spec") or {}
    if "template" in spec:
        return list(((spec["template"].get("spec") or {}).get("containers")) or [])
    return list(spec.get("containers") or [])


def _plaintext(obj: Object, item: Object) -> None:
    op = {"path": item["path"], "op": item["operator"]}
    if item["operator"] != "remove":
        op["value"] = item.get("value")
    patched = jsonpatch.apply_patch(obj, [op])
    obj.clear()
    obj.update(patched)


def _image(obj: Object, item: Object) -> None:
    predicate = (item.get("predicate") or {}).get("path")
    if predicate:
        pointer = jsonpatch.JsonPointer(predicate)
        targets = [(pointer, pointer.resolve(obj))]
    else:
        targets = []
        for i, c in enumerate(_containers(obj)):
            base = "/spec/template/spec/containers" if "template" in (obj.get("spec") or {}) \
                else "/spec/containers"
            targets.append((jsonpatch.JsonPointer(f"{base}/{i}/image"), c.get("image", "")))
    for pointer, image in targets:
        pointer.set(obj, _override_image(str(image), item))


def _override_image(image: str, item: Object) -> str:
    """Karmada's image parts: registry/repository:tag (digests kept as the tag part)."""
    registry, repository, tag = _split_image(image)
    component, op, value = item["component"], item["operator"], str(item.get("value") or "")
    part = {"Registry": registry, "Repository": repository, "Tag": tag}[component]
    if op == "add":
        part = part + value
    elif op == "remove":
        part = ""
    else:
        part = value
    if component == "Registry":
        registry = part
    elif component == "Repository":
        repository = part
    else:
        tag = part
    out = f"{registry}/{repository}" if registry else repository
    return f"{out}:{tag}" if tag else out


def _split_image(image: str) -> tuple[str, str, str]:
    registry = ""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, image = first, rest
    repository, _, tag = image.partition(":")
    return registry, repository, tag


def _command_or_args(field: str) -> Any:
    def apply(obj: Object, item: Object) -> None:
        for c in _containers(obj):
            if c.get("name") != item["containerName"]:
                continue
            current = list(c.get(field) or [])
            values = list(item.get("value") or [])
            if item["operator"] == "add":
                current += values
            else:
                current = [v for v in current if v not in values]
            c[field] = current
    return apply


def _map_overrider(field: str) -> Any:
    def apply(obj: Object, item: Object) -> None:
        meta = obj.setdefault("metadata", {})
        current = dict(meta.get(field) or {})
        for k, v in (item.get("value") or {}).items():
            if item["operator"] == "remove":
                current.pop(k, None)
            elif item["operator"] == "replace":
                if k in current:
                    current[k] = v
            else:
                current[k] = v
        meta[field] = current
    return apply


_APPLY = {
    "plaintext": _plaintext,
    "imageOverrider": _image,
    "commandOverrider": _command_or_args("command"),
    "argsOverrider": _command_or_args("args"),
    "labelsOverrider": _map_overrider("labels"),
    "annotationsOverrider": _map_overrider("annotations"),
}
