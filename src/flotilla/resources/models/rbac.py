"""Role-based access: ``rbac.authorization.k8s.io/v1`` Role, ClusterRole, RoleBinding and
ClusterRoleBinding in the Kubernetes shapes, so manifests written for Kubernetes read the
same here. `flotilla.api.authz` evaluates them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flotilla.resources.models.common import Model, Unsupported
from flotilla.resources.models.meta import Object

__all__ = ["ClusterRole", "ClusterRoleBinding", "PolicyRule", "Role", "RoleBinding",
           "RoleRef", "Subject"]

#: The verbs the API server asks about (``clusters/proxy`` uses get and create).
Verb = Literal["get", "list", "watch", "create", "update", "patch", "delete",
               "deletecollection", "*"]


class PolicyRule(Model):
    """What a rule allows: every listed verb on every listed resource (``plural`` or
    ``plural/status``) in every listed group; ``resourceNames`` narrows to names."""

    verbs: list[Verb] = Field(min_length=1)
    api_groups: list[str] = []
    resources: list[str] = []
    resource_names: list[str] = []
    non_resource_ur_ls: Unsupported = Field(default=None, alias="nonResourceURLs")


class Role(Object):
    rules: list[PolicyRule] = []


class ClusterRole(Object):
    rules: list[PolicyRule] = []
    aggregation_rule: Unsupported = None


class Subject(Model):
    """``User`` names a token (its name), ``Group`` names a token's role."""

    kind: Literal["User", "Group"]
    name: str = Field(min_length=1)
    api_group: str = "rbac.authorization.k8s.io"
    namespace: str = ""


class RoleRef(Model):
    api_group: str = "rbac.authorization.k8s.io"
    kind: Literal["Role", "ClusterRole"]
    name: str = Field(min_length=1)


class RoleBinding(Object):
    subjects: list[Subject] = []
    role_ref: RoleRef


class ClusterRoleBinding(Object):
    subjects: list[Subject] = []
    role_ref: RoleRef
