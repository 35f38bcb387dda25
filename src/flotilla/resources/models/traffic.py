"""TrafficPolicy: how the global gateway and the DNS spread users over clusters.

Names and defaults follow Envoy where Envoy has the concept (outlier detection, panic
threshold, retry budget, locality spill), because that is where operators learned them;
durations are Go strings like everywhere else in Flotilla.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from flotilla.resources.models.common import (
    Condition,
    Duration,
    Model,
    NonNegInt,
    PosInt,
    is_dns_subdomain,
    parse_duration,
)
from flotilla.resources.models.meta import Object

__all__ = [
    "DNSPolicy",
    "HealthCheck",
    "Locality",
    "OutlierDetection",
    "Retries",
    "Strategy",
    "StrategyType",
    "Timeouts",
    "TrafficPolicy",
    "TrafficPolicySpec",
    "TrafficPolicyTLS",
]

StrategyType = Literal[
    "RoundRobin", "WeightedRoundRobin", "Random", "LeastRequest", "ConsistentHash",
    "Locality", "Latency",
]
Percent = Annotated[int, Field(ge=0, le=100)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP header/cookie name
_HOST = re.compile(
    r"^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*"
    r"(:\d{1,5})?$"
)
_RETRY_CONDITIONS = ("connect-failure", "reset", "timeout", "refused-stream", "5xx",
                     "gateway-error")


def _hash_on(value: Any) -> str:
    if isinstance(value, str):
        if value == "source-ip":
            return value
        source, _, name = value.partition(":")
        if source in ("header", "cookie") and _TOKEN.match(name):
            return value
    raise PydanticCustomError(
        "hash_on", "expected 'header:NAME', 'cookie:NAME' or 'source-ip', got {got}",
        {"got": repr(value)},
    )


def _retry_on(value: Any) -> str:
    """A retry condition; HTTP status codes may be written bare (``503``) or quoted."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and (
        value in _RETRY_CONDITIONS or (value.isdigit() and 500 <= int(value) <= 599)
    ):
        return value
    raise PydanticCustomError(
        "retry_on", "expected one of {known} or a 5xx status code, got {got}",
        {"known": ", ".join(_RETRY_CONDITIONS), "got": repr(value)},
    )


def _host(value: Any) -> str:
    if isinstance(value, str) and len(value) <= 253 and _HOST.match(value):
        return value
    raise PydanticCustomError(
        "host", "expected a host name such as 'shop.example.test' or '*.example.test', "
        "got {got}", {"got": repr(value)},
    )


def _ttl(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return round(parse_duration(value))
        except ValueError:
            pass
    raise PydanticCustomError(
        "ttl", "expected seconds (30) or a duration ('30s'), got {got}", {"got": repr(value)})


def _secret_name(value: Any) -> str:
    if isinstance(value, str) and is_dns_subdomain(value):
        return value
    raise PydanticCustomError(
        "secret_name", "expected the name of a Secret in the policy's namespace (lower "
        "case letters, digits, '-' and '.'), got {got}", {"got": repr(value)})


SecretName = Annotated[str, PlainValidator(_secret_name, json_schema_input_type=str)]
HashOn = Annotated[str, PlainValidator(_hash_on, json_schema_input_type=str)]
RetryOn = Annotated[str, PlainValidator(_retry_on, json_schema_input_type=str | int)]
Host = Annotated[str, PlainValidator(_host, json_schema_input_type=str)]
#: DNS TTL in whole seconds; ``30`` and ``"30s"`` both accepted.
TTL = Annotated[int, PlainValidator(_ttl, json_schema_input_type=str | int)]
PathPrefix = Annotated[str, Field(pattern=r"^/")]


class Strategy(Model):
    type: StrategyType = "RoundRobin"
    #: Session affinity key for ConsistentHash (and within a region for Locality).
    hash_on: HashOn | None = None

    @property
    def hash_source(self) -> tuple[str, str] | None:
        """``("header", "x-user")``, ``("cookie", "sid")``, ``("source-ip", "")`` or None."""
        if self.hash_on is None:
            return None
        source, _, name = self.hash_on.partition(":")
        return source, name


class Locality(Model):
    #: The preferred region; default: the gateway's own ``--region``.
    region: str | None = None
    #: A request header naming the client's region, overriding ``region`` per request.
    header: str | None = Field(default=None, pattern=_TOKEN.pattern)
    #: Regions to fall back to, in order, after the preferred one.
    failover: list[str] = []
    #: Spill to the next region when the preferred region's healthy share of endpoints
    #: falls under this fraction (Envoy's overprovisioning factor 1.4 spills at ~0.71).
    spill_threshold: Fraction = 0.7


class HealthCheck(Model):
    path: str = Field(default="/healthz", pattern=r"^/")
    interval: Duration = 5.0
    timeout: Duration = 1.0
    healthy_threshold: PosInt = 2
    unhealthy_threshold: PosInt = 3

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HealthCheck:
        if self.timeout > self.interval:
            raise ValueError("timeout must not be longer than interval")
        return self


class OutlierDetection(Model):
    #: Consecutive 5xx answers (or connect errors) that eject an endpoint.
    consecutive_errors: PosInt = 5
    #: Consecutive connect failures that eject sooner; default: same as consecutiveErrors.
    consecutive_connect_errors: PosInt | None = None
    #: Ejection time; multiplied by the number of times the endpoint was ejected before.
    base_ejection_time: Duration = 30.0
    max_ejection_time: Duration = 300.0
    max_ejection_percent: Percent = 10
    #: Below this healthy percentage the balancer ignores health and uses every endpoint.
    panic_threshold: Percent = 50


class Retries(Model):
    attempts: NonNegInt = 2
    retry_on: list[RetryOn] = ["connect-failure", "reset", "503"]
    #: Retry POST/PATCH too; off by default because they may not be safe to repeat.
    non_idempotent: bool = False
    #: Retries allowed as a percentage of active requests (Envoy's retry budget).
    budget_percent: Percent = 20


class Timeouts(Model):
    connect: Duration = 1.0
    #: Per upstream attempt; default: whatever is left of ``total``.
    per_try: Duration | None = None
    total: Duration = 30.0

    @model_validator(mode="after")
    def _per_try_within_total(self) -> Timeouts:
        if self.per_try is not None and self.per_try > self.total:
            raise ValueError("perTry must not be longer than total")
        return self


class DNSPolicy(Model):
    #: Seconds resolvers may cache an answer: short, so a dead cluster leaves caches fast
    #: (the DNS server uses the same 5 s when the field is absent).
    ttl: TTL = 5
    #: How the DNS orders/chooses cluster addresses; default: follow ``strategy.type``.
    strategy: Literal["RoundRobin", "WeightedRoundRobin", "Locality", "Failover", "All"] | None \
        = None


class TrafficPolicyTLS(Model):
    """HTTPS at the gateway for the policy's hosts.

    The certificate is a Secret of type ``kubernetes.io/tls`` (``tls.crt``, ``tls.key``)
    in the policy's namespace, as an Ingress names it. Whether that Secret exists and
    holds a usable pair is checked by the gateway, which keeps the last good pair and
    reports the problem, because a Secret can change after the policy was accepted.
    """

    secret_name: SecretName
    #: Answer plain HTTP for these hosts with a 308 redirect to https.
    redirect_http: bool = Field(default=False, alias="redirectHTTP")


class TrafficPolicySpec(Model):
    service: str = Field(min_length=1)
    hosts: list[Host] = Field(min_length=1)
    paths: list[PathPrefix] = []
    strategy: Strategy = Field(default_factory=Strategy)
    #: Relative weight per cluster name (WeightedRoundRobin); unlisted clusters weigh 1.
    weights: dict[str, NonNegInt] = {}
    locality: Locality | None = None
    health_check: HealthCheck | None = None
    outlier_detection: OutlierDetection | None = None
    retries: Retries = Field(default_factory=Retries)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    #: Add ``x-flotilla-cluster`` to responses (debugging); switch off to hide topology.
    serve_header: bool = True
    dns: DNSPolicy = Field(default_factory=DNSPolicy)
    #: Terminate TLS for ``hosts`` with a certificate from a Secret.
    tls: TrafficPolicyTLS | None = None


class ClusterTraffic(Model):
    name: str
    endpoints: NonNegInt = 0
    healthy_endpoints: NonNegInt = 0


class TrafficPolicyStatus(Model):
    conditions: list[Condition] = []
    clusters: list[ClusterTraffic] = []


class TrafficPolicy(Object):
    spec: TrafficPolicySpec
    status: TrafficPolicyStatus = Field(default_factory=TrafficPolicyStatus)
