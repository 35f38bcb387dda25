"""RolloutPolicy: roll a template change out wave by wave, gated on health, with
automatic rollback."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from flotilla.resources.models.common import (
    Condition,
    Duration,
    LabelSelector,
    Model,
    NonNegInt,
    PosInt,
    format_duration,
    parse_duration,
)
from flotilla.resources.models.meta import Object

__all__ = [
    "Analysis",
    "RolloutPolicy",
    "RolloutPolicySpec",
    "RolloutPolicyStatus",
    "TargetSelector",
    "Wave",
]

MANUAL = "manual"


def _pause(value: Any) -> float | str:
    if value == MANUAL:
        return MANUAL
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise PydanticCustomError(
        "pause", "expected a duration such as '10s' or 'manual', got {got}",
        {"got": repr(value)},
    )


def _show_pause(value: float | str) -> str:
    return value if isinstance(value, str) else format_duration(value)


#: Seconds to wait between waves, or ``"manual"``: wait for ``flotilla rollout resume``.
Pause = Annotated[
    float | str,
    PlainValidator(_pause, json_schema_input_type=str),
    PlainSerializer(_show_pause, return_type=str),
]


class TargetSelector(Model):
    """Which templates the policy governs (one by name, or all of a kind by labels)."""

    api_version: str = "apps/v1"
    kind: str = "Deployment"
    name: str = ""
    label_selector: LabelSelector | None = None


class Wave(Model):
    """One step of a rollout. Exactly one way of naming its clusters."""

    clusters: list[str] | None = None
    #: Cumulative share of the placed clusters updated once this wave is done.
    percent: Annotated[int, Field(ge=1, le=100)] | None = None
    cluster_selector: LabelSelector | None = None
    regions: list[str] | None = None
    #: Overrides ``spec.pause`` after this wave.
    pause: Pause | None = None

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Wave:
        given = [n for n, v in (("clusters", self.clusters), ("percent", self.percent),
                                ("clusterSelector", self.cluster_selector),
                                ("regions", self.regions)) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "a wave needs exactly one of clusters, percent, clusterSelector or regions"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class Analysis(Model):
    """Gates a wave must pass before the next starts (figures from gateway and agents)."""

    interval: Duration = 10.0
    #: Requests the new revision must have served before the error rate counts.
    min_requests: NonNegInt = 0
    max_error_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    max_p99_latency: Duration | None = None
    #: How long the new revision's pods may take to become ready.
    ready_timeout: Duration = 300.0


class RolloutPolicySpec(Model):
    selector: TargetSelector
    waves: list[Wave] = Field(min_length=1)
    pause: Pause = 0.0
    analysis: Analysis | None = None
    auto_rollback: bool = True
    history_limit: PosInt = 10

    @model_validator(mode="after")
    def _percent_grows(self) -> RolloutPolicySpec:
        shares = [w.percent for w in self.waves if w.percent is not None]
        if any(b <= a for a, b in pairwise(shares)):
            raise ValueError("waves: percent is cumulative and must grow from wave to wave")
        return self


Phase = Literal["Idle", "Progressing", "Paused", "Succeeded", "Failed", "RolledBack",
                "Aborted"]


class RolloutPolicyStatus(Model):
    phase: Phase = "Idle"
    current_wave: NonNegInt = 0
    revision: NonNegInt | None = None
    stable_revision: NonNegInt | None = None
    message: str = ""
    conditions: list[Condition] = []


class RolloutPolicy(Object):
    spec: RolloutPolicySpec
    status: RolloutPolicyStatus = Field(default_factory=RolloutPolicyStatus)
