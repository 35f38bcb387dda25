"""Store metrics: group-commit batch sizes, commit (fsync) latency and watch lag, as
Prometheus families built when scraped.

The writer thread and the watch hub bump plain integers (`Buckets`), never a
prometheus_client object: ``observe()`` takes a lock per call, and the writer thread is
the one place every write of the control plane passes through. `StoreCollector` turns
the numbers into families on the API server's /metrics. Only the SQLite store keeps
them; a store without ``telemetry()`` (etcd: it has its own /metrics) exports nothing here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class Buckets:
    """A histogram as plain numbers: cheap to bump from any thread (one writer)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += n
            out.append(("+Inf" if bound == float("inf") else str(bound), acc))
        return out


@dataclass(frozen=True, slots=True)
class StoreTelemetry:
    """What a store tells /metrics when scraped (the SQLite store's `telemetry()`)."""

    commit_seconds: Buckets
    batch_size: Buckets
    #: watch subscriptions that fell behind by more than their buffer (then re-read)
    watch_overflows: int
    #: the oldest committed change a watcher has not taken yet, in seconds, and how
    #: many changes wait, for the worst open watch
    watch_lag_seconds: float
    watch_backlog: int


class StoreCollector(Collector):
    def __init__(self, source: Callable[[], StoreTelemetry | None]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        stats = self.source()
        if stats is None:
            return
        commit = HistogramMetricFamily(
            "flotilla_store_commit_duration_seconds",
            "Time to commit one group-commit batch (its fsync included)")
        commit.add_metric([], stats.commit_seconds.cumulative(), stats.commit_seconds.total)
        batch = HistogramMetricFamily(
            "flotilla_store_write_batch_size",
            "Writes committed together in one transaction (one fsync)")
        batch.add_metric([], stats.batch_size.cumulative(), stats.batch_size.total)
        overflows = CounterMetricFamily(
            "flotilla_store_watch_overflows",
            "Watch subscriptions that fell a whole buffer behind and re-read the log")
        overflows.add_metric([], stats.watch_overflows)
        lag = GaugeMetricFamily(
            "flotilla_store_watch_lag_seconds",
            "Age of the oldest committed change a watcher has not taken yet (worst watch)")
        lag.add_metric([], stats.watch_lag_seconds)
        pending = GaugeMetricFamily(
            "flotilla_store_watch_backlog_events",
            "Committed changes waiting in the fullest watch buffer")
        pending.add_metric([], stats.watch_backlog)
        yield from (commit, batch, overflows, lag, pending)
