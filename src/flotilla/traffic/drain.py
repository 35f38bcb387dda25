"""`DrainWatch`: is a client that is behind still taking its response fast enough?

Two rules, both judged only while the client is *behind* (our buffer to it is over its
high-water mark, `ClientConnection.pause_writing`), so a slow upstream or an idle
keep-alive connection never counts against the client:

- **write timeout** (nginx's ``send_timeout``): the client took no byte at all for
  ``write_timeout`` seconds. Any byte taken restarts it, so by itself it never cuts a
  client that reads, however slowly;
- **minimum rate** (Apache's ``mod_reqtimeout`` ``MinRate``, IIS's
  ``minBytesPerSecond``): over ``window`` seconds spent behind, the client took fewer
  than ``min_rate`` bytes a second on average. That is what ends a reader dripping a
  byte at a time, which would otherwise pin its upstream connection for as long as the
  response lasts. A client above the floor starts a new window and is never cut.

"Took" is what the client's side acknowledged (`ClientConnection.delivered`: written,
minus our buffer, minus the kernel's unsent queue, `flotilla.lifecycle.net.kernel_unsent`).
Measured from our buffer alone, a reader taking 256 KiB/s on loopback looked stalled
for seconds (the kernel reports the socket writable only once much of its
megabytes-large send buffer drained), and the write timeout cut it. The checks run on
the connection's one timer, armed from `deadline`: the hot path only counts the bytes
it writes.
"""

from __future__ import annotations

_NEVER = float("inf")


class DrainWatch:
    __slots__ = ("behind_bytes", "behind_since", "behind_time", "mark", "min_rate",
                 "stall_mark", "stalled_since", "window", "write_timeout")

    def __init__(self, write_timeout: float, min_rate: float, window: float) -> None:
        """``min_rate`` in bytes a second (0: no minimum rate), judged over ``window``
        seconds spent behind."""
        self.write_timeout = write_timeout
        self.min_rate = min_rate
        self.window = window
        #: Start of the current stretch behind (None: the client keeps up).
        self.behind_since: float | None = None
        #: ``delivered`` when that stretch (or the current window inside it) began.
        self.mark = 0
        #: Earlier stretches of the current window: seconds behind, bytes taken.
        self.behind_time = 0.0
        self.behind_bytes = 0
        #: Since when, and from which ``delivered``, the client took nothing.
        self.stalled_since = 0.0
        self.stall_mark = 0

    def fell_behind(self, now: float, delivered: int) -> None:
        self.behind_since = self.stalled_since = now
        self.mark = self.stall_mark = delivered

    def caught_up(self, now: float, delivered: int) -> None:
        if self.behind_since is None:
            return
        self.behind_time += now - self.behind_since
        self.behind_bytes += delivered - self.mark
        self.behind_since = None

    def deadline(self) -> float:
        """When `check` next has something to judge (``inf``: the client keeps up)."""
        since = self.behind_since
        if since is None:
            return _NEVER
        stall = self.stalled_since + self.write_timeout
        if self.min_rate <= 0:
            return stall
        return min(stall, since + self.window - self.behind_time)

    def check(self, now: float, delivered: int) -> str | None:
        """``"write"`` or ``"min-rate"`` when the client must be cut, else None (and the
        next stall or window starts where due)."""
        since = self.behind_since
        if since is None:
            return None
        if self.stalled_since + self.write_timeout <= now:
            if delivered <= self.stall_mark:
                return "write"
            self.stalled_since, self.stall_mark = now, delivered
        if self.min_rate > 0:
            spent = self.behind_time + (now - since)
            if spent >= self.window:
                took = self.behind_bytes + delivered - self.mark
                if took < self.min_rate * spent:
                    return "min-rate"
                self.behind_time, self.behind_bytes = 0.0, 0
                self.behind_since, self.mark = now, delivered
        return None
