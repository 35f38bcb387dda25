"""Fair sharing of the API between callers: Kubernetes' API Priority and Fairness, small.

APF sorts every request into a *priority level* by who sends it, gives each level its
own share of the server, and inside a level shares between *flows* (callers), so one
misbehaving client slows only itself. The same shape here, with token buckets instead
of concurrency seats (every request here is short; the watches, which are not, have
their own cap):

* ``exempt``: the ``admin`` role, as ``system:masters`` is in Kubernetes: never limited
  (the operator must always be able to repair the control plane).
* ``system``: the components' roles, ``agent``, ``gateway`` and ``dns``. Each identity
  has its own bucket; no user's traffic draws from it, so a heartbeat is refused only
  when that agent itself floods. The server's own controllers call the in-process
  registry and never pass the HTTP door at all.
* ``workload``: every other token (``edit``, ``view``, custom roles). Each identity has
  its own bucket, and all of them together draw from one more bucket (the level's
  share), so a crowd of users cannot take the server over either.

An identity is the token's name (`flotilla.api.auth.Principal.name`): one per component
(``agent-east-1``, ``gateway``), one per operator token. A refused request costs its
caller nothing (no token is taken) and is answered 429 with ``Retry-After``.

Watches are capped per identity (each holds a queue and a task in the server), and
each gets a lifetime chosen by the server, uniform in ``[min, 2·min)`` as Kubernetes'
``--min-request-timeout`` does, so long-lived streams are spread over time and
rebalanced between servers; clients resume from their last resourceVersion.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flotilla.api.auth import ADMIN, AGENT, Principal
from flotilla.api.authz.builtin import DNS, GATEWAY
from flotilla.api.errors import TooManyRequestsError
from flotilla.api.fairness_config import FairnessConfig

__all__ = ["EXEMPT", "SYSTEM", "WORKLOAD", "Fairness", "FairnessConfig", "WatchTicket",
           "level_of"]

EXEMPT = "exempt"
SYSTEM = "system"
WORKLOAD = "workload"
#: The roles of the components: their requests are the ``system`` level.
SYSTEM_ROLES = frozenset({AGENT, GATEWAY, DNS})
#: Buckets kept before idle (full) ones are forgotten: bounds memory with many tokens.
_PRUNE_AT = 4096


def level_of(principal: Principal) -> str:
    """The priority level of a caller, by its token's role."""
    if principal.role == ADMIN:
        return EXEMPT
    return SYSTEM if principal.role in SYSTEM_ROLES else WORKLOAD


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a request takes one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: one is there now); refills first."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


@dataclass(slots=True)
class WatchTicket:
    """One open watch: when the server ends it, and how to give its slot back."""

    identity: str
    #: `time.monotonic` deadline after which the stream ends.
    deadline: float
    _release: Callable[[str], None]
    _released: bool = False

    def release(self) -> None:
        """Idempotent: the slot is given back once, whoever notices the end first."""
        if not self._released:
            self._released = True
            self._release(self.identity)


@dataclass
class Fairness:
    """The buckets and the watch counts of one server. Single-threaded (the event loop)."""

    config: FairnessConfig = field(default_factory=FairnessConfig)
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _level_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _watches: dict[str, int] = field(default_factory=dict)
    #: Requests refused, by level: for the bench and the metrics page.
    rejected: dict[str, int] = field(default_factory=dict)

    def _limits(self, level: str) -> tuple[float, float]:
        c = self.config
        return (c.system_rate, c.system_burst) if level == SYSTEM else \
            (c.user_rate, c.user_burst)

    def _bucket(self, identity: str, level: str, now: float) -> TokenBucket | None:
        rate, burst = self._limits(level)
        if rate <= 0:
            return None
        bucket = self._buckets.get(identity)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_AT:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full(now)}
            bucket = self._buckets[identity] = TokenBucket(rate, burst, now)
        return bucket

    def _level_bucket(self, level: str, now: float) -> TokenBucket | None:
        rate = self.config.users_total_rate if level == WORKLOAD else 0.0
        if rate <= 0:
            return None
        bucket = self._level_buckets.get(level)
        if bucket is None:
            bucket = self._level_buckets[level] = TokenBucket(rate, 2 * rate, now)
        return bucket

    def admit(self, principal: Principal) -> None:
        """Take one request from the caller's buckets, or raise the 429 to answer."""
        level = level_of(principal)
        if level == EXEMPT:
            return
        now = self.clock()
        own = self._bucket(principal.name, level, now)
        shared = self._level_bucket(level, now)
        own_wait = own.wait(now) if own is not None else 0.0
        shared_wait = shared.wait(now) if shared is not None else 0.0
        if own_wait or shared_wait:
            self.rejected[level] = self.rejected.get(level, 0) + 1
            if own_wait >= shared_wait:
                rate, burst = self._limits(level)
                why = (f"{principal.name!r} is over its rate limit of {rate:g} requests/s "
                       f"(burst {burst:g}) for the {level} priority level")
            else:
                why = (f"the {level} priority level is over its share of "
                       f"{self.config.users_total_rate:g} requests/s (all users together)")
            raise TooManyRequestsError(f"Too many requests: {why}; retry later",
                                       max(own_wait, shared_wait))
        if own is not None:
            own.take()
        if shared is not None:
            shared.take()

    def open_watch(self, principal: Principal) -> WatchTicket:
        """Count a new watch of ``principal``, or raise the 429 naming the cap."""
        name = principal.name
        open_now = self._watches.get(name, 0)
        cap = self.config.max_watches
        if open_now >= cap:
            level = level_of(principal)
            self.rejected[level] = self.rejected.get(level, 0) + 1
            raise TooManyRequestsError(
                f"Too many open watches: {name!r} has {open_now} open, and the limit is "
                f"{cap} per identity (--max-watches-per-identity); close one first", 1.0)
        self._watches[name] = open_now + 1
        lifetime = self.config.min_watch_timeout * (1.0 + self.rand())
        return WatchTicket(name, self.clock() + lifetime, self._release_watch)

    def open_watches(self, identity: str) -> int:
        return self._watches.get(identity, 0)

    def _release_watch(self, identity: str) -> None:
        left = self._watches.get(identity, 0) - 1
        if left > 0:
            self._watches[identity] = left
        else:
            self._watches.pop(identity, None)
