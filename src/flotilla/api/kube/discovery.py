"""Kubernetes API discovery: ``/api``, ``/apis``, ``/apis/G``, ``/api/v1``, ``/apis/G/V``
and ``/version``, derived from the kinds table.

kubectl and client-go learn what a server serves from these documents before any
request (``kubectl get deploy`` first maps ``deploy`` to ``deployments.apps/v1`` through
them), so they must be served at the exact paths, without a redirect: client-go does not
follow ``/api`` -> ``/api/``. Only the legacy (unaggregated) documents are served; a
client asking for aggregated discovery v2 gets plain ``application/json`` and falls back
to them, as client-go does against any server without v2.

(Not to be confused with `flotilla.api.discovery`, the ServiceImport endpoints view.)
"""

from __future__ import annotations

from typing import Any

from flotilla import __version__
from flotilla.resources.kinds import KINDS, Kind

Object = dict[str, Any]

#: The verbs every kind answers (PATCH: `flotilla.api.writes`): one list, because the
#: registry gives every kind the same semantics.
VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
#: The verbs of a ``status`` sub-resource.
STATUS_VERBS = ("get", "patch", "update")
#: The Kubernetes API level Flotilla's subset follows (kubectl warns on a skew beyond one
#: minor version, so this is the kubectl release the API is tested with).
KUBE_MAJOR, KUBE_MINOR = "1", "32"


def _split(group_version: str) -> tuple[str, str]:
    group, _, version = group_version.rpartition("/")
    return group, version


def _served() -> dict[str, list[str]]:
    """Group -> its versions, in the order the kinds table first names them."""
    groups: dict[str, list[str]] = {}
    for kind in KINDS:
        for gv in kind.api_versions:
            group, version = _split(gv)
            versions = groups.setdefault(group, [])
            if version not in versions:
                versions.append(version)
    return groups


_GROUPS = _served()


def _group_doc(name: str) -> Object:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in _GROUPS[name]]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_versions() -> Object:
    """``/api``: the core group's versions."""
    return {"kind": "APIVersions", "versions": list(_GROUPS.get("", [])),
            "serverAddressByClientCIDRs": []}


def api_group_list() -> Object:
    """``/apis``: every named group, Karmada's ``policy.karmada.io`` included."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g) for g in _GROUPS if g]}


def _short_names(kind: Kind) -> list[str]:
    """Short names as Kubernetes lists them: the singular is not one (it is
    ``singularName``), so ``deploy`` but not ``deployment``."""
    return [n for n in kind.short_names if n != kind.kind.lower()]


def _resources(kind: Kind) -> list[Object]:
    main: Object = {
        "name": kind.plural,
        "singularName": kind.kind.lower(),
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": list(VERBS),
    }
    if short := _short_names(kind):
        main["shortNames"] = short
    if kind.categories:
        main["categories"] = list(kind.categories)
    out = [main]
    if kind.has_status:
        out.append({"name": f"{kind.plural}/status", "singularName": "",
                    "namespaced": kind.namespaced, "kind": kind.kind,
                    "verbs": list(STATUS_VERBS)})
    if kind.has_scale:  # `flotilla.api.scale`: what `kubectl scale` looks for
        out.append({"name": f"{kind.plural}/scale", "singularName": "",
                    "namespaced": kind.namespaced, "group": "autoscaling",
                    "version": "v1", "kind": "Scale", "verbs": list(STATUS_VERBS)})
    return out


def api_resource_list(group_version: str) -> Object | None:
    """``/api/v1`` or ``/apis/G/V``; None when nothing is served there."""
    kinds = [k for k in KINDS if group_version in k.api_versions]
    if not kinds:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": [r for k in kinds for r in _resources(k)]}


def version_info() -> Object:
    """``/version``: the Kubernetes API level, with Flotilla's own version as build
    metadata so ``kubectl version`` shows both."""
    return {"major": KUBE_MAJOR, "minor": KUBE_MINOR,
            "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0+flotilla-{__version__}",
            "gitCommit": "", "gitTreeState": "", "buildDate": "",
            "goVersion": "", "compiler": "", "platform": "python"}


def document(path: str) -> Object | None:
    """The discovery document at ``path``, or None when the path is not a discovery
    path (it is then a resource path, or unknown)."""
    parts = [p for p in path.split("/") if p]
    if parts == ["api"]:
        return api_versions()
    if parts == ["apis"]:
        return api_group_list()
    if len(parts) == 2 and parts[0] == "api":
        return api_resource_list(parts[1])
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in _GROUPS and parts[1]:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(parts[1])}
    if len(parts) == 3 and parts[0] == "apis":
        return api_resource_list(f"{parts[1]}/{parts[2]}")
    return None
