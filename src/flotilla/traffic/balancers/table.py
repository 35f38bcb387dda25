"""Strategy name -> balancer factory: the one list of strategies the gateway can run.

An explicit table rather than modules registering themselves on import: what exists is
readable in one place, importing a balancer has no side effect, and nothing imports this
module back (the policy parser validates names with the shared TrafficPolicy model;
`tests/traffic/test_balancers.py` checks that every name it accepts is here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flotilla.traffic.balancers.base import Balancer, BalancerInputs
from flotilla.traffic.balancers.consistent_hash import Maglev, RingHash
from flotilla.traffic.balancers.latency import PeakEwma
from flotilla.traffic.balancers.least_request import LeastRequest
from flotilla.traffic.balancers.locality import LocalityPriority
from flotilla.traffic.balancers.random_pick import RandomPick
from flotilla.traffic.balancers.round_robin import RoundRobin, SmoothWeighted

Factory = Callable[[BalancerInputs], Balancer]


def _locality(i: BalancerInputs) -> LocalityPriority:
    loc = i.policy.locality
    return LocalityPriority(i.upstreams, loc.failover, loc.region or i.region,
                            loc.spill_threshold)


BALANCERS: Mapping[str, Factory] = {
    "RoundRobin": lambda i: RoundRobin(),
    "WeightedRoundRobin": lambda i: SmoothWeighted(),
    "Random": lambda i: RandomPick(i.rng),
    "LeastRequest": lambda i: LeastRequest(i.rng),
    "ConsistentHash": lambda i: Maglev(i.upstreams),
    "Maglev": lambda i: Maglev(i.upstreams),
    "RingHash": lambda i: RingHash(i.upstreams),
    "Locality": _locality,
    "Latency": lambda i: PeakEwma(i.rng, i.clock),
}


def create(name: str, inputs: BalancerInputs,
           table: Mapping[str, Factory] = BALANCERS) -> Balancer:
    try:
        factory = table[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(sorted(table))}"
                         ) from None
    return factory(inputs)
