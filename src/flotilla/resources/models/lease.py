"""Lease: a member cluster's heartbeat, renewed by its agent (shape of
``coordination.k8s.io/v1`` Lease, so the cluster-health logic reads like Kubernetes')."""

from __future__ import annotations

from pydantic import Field

from flotilla.resources.models.common import Model, NonNegInt, PosInt, Timestamp
from flotilla.resources.models.meta import Object

__all__ = ["Lease", "LeaseSpec"]


class LeaseSpec(Model):
    holder_identity: str = ""
    lease_duration_seconds: PosInt | None = None
    acquire_time: Timestamp | None = None
    renew_time: Timestamp | None = None
    lease_transitions: NonNegInt | None = None


class Lease(Object):
    spec: LeaseSpec = Field(default_factory=LeaseSpec)
