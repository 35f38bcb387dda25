"""A TrafficPolicy as the DNS and the gateway read it.

The gateway validates the whole spec with the shared model
(`flotilla.traffic.model.parse_policy`); the DNS needs only where a name points and
with what weight, and must keep answering for every other policy when one is odd. The
view is what both read without a full parse, and holds the rule they share: a cluster
the policy does not weigh weighs 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flotilla.resources.views.fields import Meta, empty, frozen_json, mapping, text

#: The weight of a cluster the policy does not name.
DEFAULT_WEIGHT = 1


@dataclass(frozen=True, slots=True)
class TrafficPolicyView:
    """What the data planes read of a TrafficPolicy without a full parse."""

    meta: Meta = field(default_factory=Meta)
    service: str = ""
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    #: ``spec.strategy.type`` as stored ("" if none).
    strategy: str = ""
    #: Cluster weights, from ``spec.weights`` or ``spec.strategy.weights``, as a mapping
    #: or a list of ``{cluster|name, weight}``; entries that are not str -> int are left
    #: out (a negative weight is kept, for the reader to refuse with its own message).
    weights: Mapping[str, int] = field(default_factory=empty, hash=False)
    #: ``spec.locality.failover``: regions to fall back to, in order.
    failover: tuple[str, ...] = ()
    #: ``spec.dns`` as stored (ttl and strategy are the DNS's to parse).
    dns: Mapping[str, Any] = field(default_factory=empty, hash=False)

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> TrafficPolicyView:
        """The view of a stored TrafficPolicy dict; never raises."""
        obj = mapping(obj)
        spec = mapping(obj.get("spec"))
        strategy = mapping(spec.get("strategy"))
        return cls(
            meta=Meta.of(obj.get("metadata")),
            service=text(spec.get("service")),
            hosts=_strings(spec.get("hosts")),
            paths=_strings(spec.get("paths")),
            strategy=text(strategy.get("type")),
            weights=_weights(spec.get("weights", strategy.get("weights"))),
            failover=_strings(mapping(spec.get("locality")).get("failover")),
            dns=frozen_json(spec.get("dns")),
        )

    @property
    def namespace(self) -> str:
        """The namespace, "default" when unset (as the API stores it)."""
        return self.meta.namespace or "default"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.meta.name}"

    def weight_of(self, cluster: str) -> int:
        return self.weights.get(cluster, DEFAULT_WEIGHT)


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) \
        if isinstance(value, list | tuple) else ()


def _weights(raw: object) -> Mapping[str, int]:
    items: Iterable[tuple[Any, Any]]
    if isinstance(raw, Mapping):
        items = raw.items()
    elif isinstance(raw, list | tuple):
        items = ((w.get("cluster", w.get("name")), w.get("weight"))
                 for w in raw if isinstance(w, Mapping))
    else:
        items = ()
    return MappingProxyType({c: w for c, w in items if isinstance(c, str)
                             and isinstance(w, int) and not isinstance(w, bool)})
