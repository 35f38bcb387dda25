"""Object metadata and the envelope (``apiVersion``/``kind``/``metadata``) of every kind.

Server-set fields (uid, resourceVersion, generation, timestamps) are typed here so that
controllers read them as values, but `flotilla.resources.validation.validate_object`
drops them before checking user input: a user may send back an object they fetched
(``get -o yaml | edit | apply``) and the API server overwrites those fields anyway.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, PlainValidator, field_validator
from pydantic_core import PydanticCustomError

from flotilla.resources.models.common import (
    LabelKey,
    LabelValue,
    Loose,
    Model,
    NonNegInt,
    Timestamp,
    Unsupported,
    is_dns_subdomain,
    qualified_name_problem,
)

__all__ = [
    "SERVER_SET_FIELDS",
    "KubeObject",
    "KubeObjectMeta",
    "Object",
    "ObjectMeta",
    "OwnerReference",
]

#: Metadata fields the API server owns; accepted on input and then ignored.
SERVER_SET_FIELDS = (
    "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "managedFields", "selfLink",
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ANNOTATIONS_MAX_BYTES = 256 * 1024


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("name", "expected a string, got {got}", {"got": repr(value)})
    if not is_dns_subdomain(value):
        raise PydanticCustomError(
            "name",
            "invalid name {got}: at most 253 lower-case letters, digits, '-' or '.', "
            "starting and ending with a letter or digit",
            {"got": repr(value)},
        )
    return value


def _namespace(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("name", "expected a string, got {got}", {"got": repr(value)})
    if value and (len(value) > 63 or not _DNS_LABEL.match(value)):
        raise PydanticCustomError(
            "name",
            "invalid namespace {got}: at most 63 lower-case letters, digits or '-', "
            "starting and ending with a letter or digit",
            {"got": repr(value)},
        )
    return value


def _finalizer(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("finalizer", "expected a string, got {got}",
                                  {"got": repr(value)})
    problem = qualified_name_problem(value)
    if problem:
        raise PydanticCustomError("finalizer", "invalid finalizer {got}: {problem}",
                                  {"got": repr(value), "problem": problem})
    return value


#: A DNS-1123 subdomain of at most 253 characters: what every object name must be.
Name = Annotated[str, PlainValidator(_name, json_schema_input_type=str)]
Namespace = Annotated[str, PlainValidator(_namespace, json_schema_input_type=str)]
Finalizer = Annotated[str, PlainValidator(_finalizer, json_schema_input_type=str)]


class OwnerReference(Model):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Model):
    name: Name
    namespace: Namespace = ""
    labels: dict[LabelKey, LabelValue] = {}
    annotations: dict[LabelKey, str] = {}
    finalizers: list[Finalizer] = []
    owner_references: list[OwnerReference] = []
    # Server-set; see the module docstring.
    uid: str | None = None
    resource_version: str | None = None
    generation: NonNegInt | None = None
    creation_timestamp: Timestamp | None = None
    deletion_timestamp: Timestamp | None = None
    deletion_grace_period_seconds: NonNegInt | None = None
    managed_fields: Any = Field(default=None, exclude=True)
    self_link: Any = Field(default=None, exclude=True)
    # Kubernetes has it; Flotilla needs a name up front (it is the scheduling key).
    generate_name: Unsupported = None

    @field_validator("annotations")
    @classmethod
    def _annotations_fit(cls, value: dict[str, str]) -> dict[str, str]:
        size = sum(len(k) + len(v) for k, v in value.items())
        if size > _ANNOTATIONS_MAX_BYTES:
            raise ValueError(f"annotations total {size} bytes, more than the 256 KiB allowed")
        return value


class KubeObjectMeta(ObjectMeta):
    """Metadata of a Kubernetes manifest: fields we do not know are kept, not refused."""

    model_config = Loose.model_config
    generate_name: Any = None


class Object(Model):
    """The envelope of Flotilla's own kinds; each kind adds ``spec`` and maybe ``status``."""

    api_version: str
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


class KubeObject(Loose):
    """The envelope of a Kubernetes manifest, stored as given."""

    api_version: str
    kind: str
    metadata: KubeObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace
