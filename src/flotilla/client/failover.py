"""When a client moves to another API server, and when it may send a request again there.

Several `flotilla server` replicas share one etcd: any of them can serve any request, so
a client given several (`flotilla.client.servers`) moves on when its server fails. The
hard part is not moving but *repeating*: a request whose answer was lost may have been
done. The rules (`HttpClient._call` applies them; docs/architecture.md gives the why):

**When it comes back** (`Failback`): the first server is the preferred one; after a
hold-down away the client looks at its ``/readyz`` and returns once it is ready. A
watch on another server then ends at its next event or BOOKMARK and the caller resumes
it from its last resourceVersion on the preferred server: nothing missed or repeated.

**What moves the client** (`Outcome.switch`): the connection is refused or cannot be
made, the request times out or the connection breaks mid-answer, or the server answers
503 (overloaded, shutting down, or its store -- etcd -- unavailable). A TLS failure does
*not* move it: a certificate that does not verify is a configuration mistake, and
trying the next server would only hide it behind a later, vaguer error.

**Whether the request reached a server** (`Outcome.reached`): ``False`` when provably
not -- no connection was made, or the server answered a 503 that says it did nothing
(a ``Retry-After`` from the in-flight limit, "shutting down" from a closing store, or a
plain-text 503 from the HTTP layer before the API saw it); ``None`` (unknown) for a
timeout, a broken connection or a 503 from an unavailable store (etcd's "may or may not
have happened").

**What may be repeated** (`Attempt.may_repeat`):

- reads (GET, list, watch, access reviews): always -- repeating them changes nothing;
- compare-and-set writes (an update or a status update carrying
  ``metadata.resourceVersion``, a delete with ``resourceVersion``): always. If the first
  try landed, the repeat answers 409 Conflict (update) or 404 (delete) -- the answers
  the caller already handles by reading again; nothing is written twice or overwritten;
- other writes (an update without resourceVersion, a delete without one, POSTs other
  than a create): only when the request provably did not reach a server. A blind
  replace repeated after someone else's write would undo it;
- a create: also after an unknown outcome, because a create cannot be done twice (the
  name is unique): the repeat either creates it or answers 409 AlreadyExists. That
  AlreadyExists is ambiguous -- our first try may have landed, or someone else created
  the name. `HttpClient.create` then reads the object, and takes it as its own only
  when it is what was sent (spec, labels, annotations equal: `http._comparable`);
  otherwise the AlreadyExists stands. Whoever created an identical object, the stored
  state is exactly what the caller asked for; an object that differs is someone else's
  and is never reported as ours.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one try at one server failed."""

    #: Move to the next server.
    switch: bool
    #: Did the request reach a server: False (provably not) or None (unknown).
    reached: bool | None
    #: For the log line naming the switch.
    why: str


def transport_outcome(exc: httpx.TransportError, *, is_tls: bool) -> Outcome:
    """The outcome of a request that got no answer."""
    what = type(exc).__name__
    detail = str(exc)
    why = f"{what}: {detail}" if detail else what
    if is_tls:
        return Outcome(False, False, why)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Outcome(True, False, why)  # no connection: nothing was sent
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError
                  | httpx.RemoteProtocolError):
        return Outcome(True, None, why)  # sent, answer lost: maybe done
    return Outcome(False, False, why)  # a local mistake (bad URL, proxy): not the server


def response_outcome(response: httpx.Response) -> Outcome:
    """The outcome of a 503 answer."""
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or "")
    why = f"503 {message or response.text[:200]}"
    if (body is None or not isinstance(body, dict) or "retry-after" in response.headers
            or "shutting down" in message):
        return Outcome(True, False, why)
    return Outcome(True, None, why)


class Kind(enum.Enum):
    READ = "read"
    CAS = "compare-and-set"
    CREATE = "create"
    WRITE = "write"


class Attempt:
    """One request across servers: may it be repeated, and may it have landed already."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        #: A try before this one may have been done by a server.
        self.maybe_done = False

    @classmethod
    def for_method(cls, method: str, params: dict[str, str] | None = None) -> Attempt:
        """The default for a request: GET reads; a DELETE with ``resourceVersion`` is
        compare-and-set; anything else a write (callers name creates and CAS updates)."""
        if method in ("GET", "HEAD"):
            return cls(Kind.READ)
        if method == "DELETE" and params and params.get("resourceVersion"):
            return cls(Kind.CAS)
        return cls(Kind.WRITE)

    def may_repeat(self, outcome: Outcome) -> bool:
        if not outcome.switch:
            return False
        if self.kind in (Kind.READ, Kind.CAS, Kind.CREATE):
            return True
        return outcome.reached is False

    def note(self, outcome: Outcome) -> None:
        """A try failed with ``outcome`` and the request goes to the next server."""
        if outcome.reached is not False:
            self.maybe_done = True


#: Seconds a client stays off its preferred (first) server after leaving it, and between
#: two looks at whether it is ready again: long enough that a server restarting, or one
#: failing now and then, is not bounced onto and off again (Envoy's outlier ejection
#: and HAProxy's ``rise`` serve the same purpose).
DEFAULT_HOLD_DOWN = 30.0


class Failback:
    """When a client that left its preferred server may look at it again.

    The first server of a list is the preferred one (the operator's order: the nearest,
    or the one meant to carry the load). A client that failed over stays on the other
    server for ``hold_down`` seconds, then asks the preferred one ``GET /readyz`` (never
    a real request: a server that is up but not ready must not get one) every
    ``hold_down`` seconds until it answers 200, and returns to it. ``None``: never.
    """

    def __init__(self, hold_down: float | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if hold_down is not None and hold_down <= 0:
            raise ValueError(f"the fail-back hold-down must be positive, got {hold_down}")
        self.hold_down = hold_down
        self.clock = clock
        #: When to look at the preferred server next (None: on it, or never).
        self.next_look: float | None = None

    def left_preferred(self) -> None:
        """The client moved off the preferred server (or off another, not onto it)."""
        if self.hold_down is not None and self.next_look is None:
            self.next_look = self.clock() + self.hold_down

    def take_look(self) -> bool:
        """True once per hold-down while away: look now (the next look is scheduled)."""
        if self.next_look is None or self.hold_down is None or self.clock() < self.next_look:
            return False
        self.next_look = self.clock() + self.hold_down
        return True

    def returned(self) -> None:
        self.next_look = None
