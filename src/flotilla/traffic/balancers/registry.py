"""Strategy name -> balancer factory. A new strategy is one module that registers itself;
nothing else changes (the policy parser accepts any registered name)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flotilla.traffic.balancers.base import Balancer
from flotilla.traffic.model import Policy
from flotilla.traffic.upstream import Upstream

#: (all upstreams of the backend, its policy, the gateway's region) -> balancer
Factory = Callable[[Sequence[Upstream], Policy, "str | None"], Balancer]

_FACTORIES: dict[str, Factory] = {}
_builtins_loaded = False


def register(name: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        return factory

    return deco


def names() -> tuple[str, ...]:
    _load_builtins()
    return tuple(sorted(_FACTORIES))


def create(name: str, upstreams: Sequence[Upstream], policy: Policy,
           region: str | None) -> Balancer:
    _load_builtins()
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(names())}") from None
    return factory(upstreams, policy, region)


def _load_builtins() -> None:
    """Import the built-in strategies (each registers itself) on first use."""
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        from flotilla.traffic.balancers import (  # noqa: F401
            consistent_hash,
            latency,
            least_request,
            locality,
            random_pick,
            round_robin,
        )
