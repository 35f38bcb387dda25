"""The settings of `flotilla.api.fairness`, apart from it: ``flotilla server`` reads
their defaults to build its flags, and must not import the server to do so."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FairnessConfig:
    """The limits, as ``flotilla server`` flags set them. A rate of 0 turns that bucket
    off. Defaults are far above what a component does (an agent: about one request a
    second) and what a person types, and low enough that one script cannot take the
    server's two cores."""

    #: Requests per second, and burst, of each identity of the ``workload`` level.
    user_rate: float = 20.0
    user_burst: int = 40
    #: Requests per second of all ``workload`` identities together (burst: twice).
    users_total_rate: float = 100.0
    #: Requests per second, and burst, of each identity of the ``system`` level.
    system_rate: float = 100.0
    system_burst: int = 200
    #: Open watches per identity (every level, admin included: they hold memory).
    max_watches: int = 100
    #: A watch ends (cleanly) after a random time in [min, 2*min) seconds.
    min_watch_timeout: float = 1800.0
    #: How often an open watch re-checks its token (revoked or expired ends it).
    watch_recheck: float = 1.0

    def problems(self) -> list[str]:
        """What is wrong with these settings, as the flag names say it (empty: fine)."""
        out = []
        for flag, value in (("--user-rate", self.user_rate),
                            ("--users-total-rate", self.users_total_rate),
                            ("--system-rate", self.system_rate)):
            if value < 0 or not math.isfinite(value):
                out.append(f"{flag} must be a finite number >= 0 (0: no limit), got {value}")
        for flag, count in (("--user-burst", self.user_burst),
                            ("--system-burst", self.system_burst),
                            ("--max-watches-per-identity", self.max_watches)):
            if count < 1:
                out.append(f"{flag} must be at least 1, got {count}")
        if not self.min_watch_timeout > 0 or not math.isfinite(self.min_watch_timeout):
            out.append(f"--min-watch-timeout must be > 0 seconds, got {self.min_watch_timeout}")
        if not self.watch_recheck > 0:
            out.append(f"the watch token recheck interval must be > 0, got {self.watch_recheck}")
        return out
