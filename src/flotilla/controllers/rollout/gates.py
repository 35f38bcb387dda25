"""Analysis gates: figures from the gateway's Prometheus metrics and the agents' status.

Request figures come from scraping the gateway's ``/metrics`` (the only place that sees
every user request per cluster); readiness comes from the Work status the agents write.
Counters are cumulative, so a gate compares two scrapes: one taken when the wave's new
pods became ready (the baseline) and one after the analysis interval. A gateway restart
resets its counters; a counter that went down is read as counted from zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from flotilla.pki import ca_file_from_env, verifying_context

REQUESTS = "flotilla_gateway_requests"
ERRORS = "flotilla_gateway_errors"
LATENCY = "flotilla_gateway_request_duration_seconds"
#: The gateway's reason for a 5xx it forwarded to the client (not retried elsewhere).
FORWARDED_5XX = "response-5xx"

#: (service, cluster) -> {"requests", "errors", "retried", "le:<bound>"...} counters.
Snapshot = dict[str, dict[str, float]]


#: Failed tries that say nothing about the version being rolled out.
_NOT_THE_VERSIONS_FAULT = frozenset({"connect-failure", "reset"})


def _key(service: str, cluster: str) -> str:
    return f"{service}|{cluster}"


def parse_metrics(text: str) -> Snapshot:
    out: Snapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if "cluster" not in labels or "service" not in labels:
                continue
            row = out.setdefault(_key(labels["service"], labels["cluster"]), {})
            name = sample.name
            if name in (REQUESTS, f"{REQUESTS}_total"):
                row["requests"] = row.get("requests", 0.0) + sample.value
            elif name in (ERRORS, f"{ERRORS}_total"):
                if labels.get("reason") in _NOT_THE_VERSIONS_FAULT:
                    # A pod being replaced refuses or resets a connection; the gateway
                    # retries elsewhere and the user never sees it. Judging the new
                    # version by it would fail good rollouts at random.
                    continue
                row["errors"] = row.get("errors", 0.0) + sample.value
                if labels.get("reason") != FORWARDED_5XX:
                    # a failed try that was never answered: it is a try, not a response
                    row["retried"] = row.get("retried", 0.0) + sample.value
            elif name == f"{LATENCY}_bucket":
                le = f"le:{labels['le']}"
                row[le] = row.get(le, 0.0) + sample.value
    return out


async def scrape(urls: Iterable[str], timeout: float = 2.0) -> Snapshot:
    """Sum of every gateway's metrics (several gateways may serve one service). An
    https metrics URL is verified against ``$FLOTILLA_CA_FILE`` (else the system's
    roots), with the process's one shared context."""
    total: Snapshot = {}
    verify = verifying_context(ca_file_from_env())
    async with httpx.AsyncClient(timeout=timeout, verify=verify) as client:
        for url in urls:
            response = await client.get(url)
            response.raise_for_status()
            for key, row in parse_metrics(response.text).items():
                acc = total.setdefault(key, {})
                for name, value in row.items():
                    acc[name] = acc.get(name, 0.0) + value
    return total


@dataclass(frozen=True, slots=True)
class Figures:
    requests: int
    failed: int
    p99: float | None

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "failed": self.failed,
                "errorRate": round(self.error_rate, 4),
                "p99Seconds": None if self.p99 is None else round(self.p99, 4)}


def _wanted(key: str, services: set[str], clusters: set[str]) -> bool:
    service, _, cluster = key.partition("|")
    short = service.rpartition("/")[2]
    return cluster in clusters and (service in services or short in services)


def window(before: Snapshot, after: Snapshot, services: Iterable[str],
           clusters: Iterable[str]) -> Figures:
    """What the given clusters served for the given services between two scrapes."""
    wanted_s, wanted_c = set(services), set(clusters)
    delta: dict[str, float] = {}
    for key, row in after.items():
        if not _wanted(key, wanted_s, wanted_c):
            continue
        base = before.get(key, {})
        reset = row.get("requests", 0.0) < base.get("requests", 0.0)
        for name, value in row.items():
            d = value if reset else value - base.get(name, 0.0)
            delta[name] = delta.get(name, 0.0) + max(d, 0.0)
    answered = delta.get("requests", 0.0) + delta.get("retried", 0.0)
    return Figures(int(answered), int(delta.get("errors", 0.0)), _p99(delta))


def _p99(delta: Mapping[str, float]) -> float | None:
    """The upper bound of the bucket holding the 99th percentile (as Prometheus's
    histogram_quantile would, without interpolation: a ceiling is what a gate needs)."""
    buckets = sorted(((float(k[3:]), v) for k, v in delta.items() if k.startswith("le:")),
                     key=lambda b: b[0])
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = 0.99 * buckets[-1][1]
    finite = [b for b, _ in buckets if not math.isinf(b)]
    for bound, count in buckets:
        if count >= target:
            return bound if not math.isinf(bound) else (finite[-1] if finite else None)
    return None
