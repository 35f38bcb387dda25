"""Per-pod CPU and memory of local pods, read from ``/proc``.

What a metrics-server gives a Kubernetes HPA, measured here: a container's CPU is the
``utime + stime`` of its process (every thread) plus ``cutime + cstime`` (children it
has waited for), turned into millicores over the time since the previous reading; its
memory is the process's resident set (``statm``). Reading only the container's own
process keeps a report cheap (no walk of /proc per pod); a container that forks
workers counts them once they exit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int, proc: Path = _PROC) -> float | None:
    """CPU time used by ``pid`` and its waited-for children, or None if it is gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    # utime, stime, cutime, cstime: fields 14-17 overall, 11-14 after the state
    return sum(int(f) for f in fields[11:15]) / _TICKS


def resident_bytes(pid: int, proc: Path = _PROC) -> int | None:
    try:
        return int((proc / str(pid) / "statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


@dataclass(slots=True)
class UsageMeter:
    """Turns cumulative CPU seconds into a rate per pod between two readings."""

    clock: Callable[[], float] = time.monotonic
    #: pod -> (time, cpu seconds per pid) of its previous reading
    _last: dict[str, tuple[float, dict[int, float]]] = field(default_factory=dict)

    def read(self, pod: str, pids: Iterable[int]) -> tuple[int, int] | None:
        """(millicores since the previous reading, resident bytes) of the pod's
        containers; None on the first reading (a rate needs two)."""
        now = self.clock()
        cpu: dict[int, float] = {}
        memory = 0
        for pid in pids:
            seconds = cpu_seconds(pid)
            if seconds is None:
                continue
            cpu[pid] = seconds
            memory += resident_bytes(pid) or 0
        previous = self._last.get(pod)
        self._last[pod] = (now, cpu)
        if previous is None or now <= previous[0]:
            return None
        # a restarted container (new pid) counts from its start: its previous is 0
        used = sum(s - previous[1].get(pid, 0.0) for pid, s in cpu.items())
        return max(0, round(used * 1000 / (now - previous[0]))), memory

    def keep_only(self, pods: Mapping[str, object]) -> None:
        """Forget pods that are gone."""
        for name in [n for n in self._last if n not in pods]:
            del self._last[name]
