"""examples/analytics/ applied unchanged to a real `flotilla up` of its clusters.yaml:
the Monte-Carlo Job's 24 shards each print their count once, from an analytics cluster
(12 each), and add up to pi; the every-minute CronJob starts a report that runs and
logs, and no pod of either ever lands on the trading cluster."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import wait_for_sync
from tests.up.harness import Api, UpProcess

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "analytics"
SHARD = re.compile(r"^\[(?P<cluster>[a-z0-9-]+)/pi-(?P<pod>\d+)-[a-z0-9]+\] shard (?P<i>\d+) "
                   r"inside=(?P<inside>\d+) samples=(?P<samples>\d+) ")
#: The schedule is every minute: the first run is due within 60 s, then it runs.
FIRST_REPORT = 150.0


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    clusters = yaml.safe_load((EXAMPLE / "clusters.yaml").read_text())["clusters"]
    for i, c in enumerate(clusters):  # addresses of this test's own
        c["address"] = f"127.0.{241 + i}.1"
    running = UpProcess(tmp_path_factory.mktemp("analytics"), clusters)
    try:
        yield running, running.wait_up()
    finally:
        running.stop()


def get(api: Api, path: str) -> dict[str, Any]:
    r = api.client.get(path)
    return dict(r.json()) if r.status_code == 200 else {}


def verdict(obj: dict[str, Any]) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return ""


def reports(api: Api) -> list[dict[str, Any]]:
    items = get(api, "/apis/batch/v1/namespaces/default/jobs").get("items") or []
    return [j for j in items if any(r.get("kind") == "CronJob" and r.get("name") == "report"
                                    for r in j["metadata"].get("ownerReferences") or [])]


def test_the_example_applies_and_runs(plane: tuple[UpProcess, Api]) -> None:
    running, api = plane
    running.cli("apply", "-f", str(EXAMPLE / "analytics.yaml"))
    pi = "/apis/batch/v1/namespaces/default/jobs/pi"
    assert wait_for_sync(lambda: verdict(get(api, pi)), 120, 0.2, what="pi done") == "Complete"
    status = get(api, pi)["status"]
    assert (status["completedIndexes"], status["succeeded"]) == ("0-23", 24)
    out = running.cli("logs", "job/pi", "--all-clusters").stdout
    shards = [m for m in map(SHARD.match, out.splitlines()) if m]
    assert sorted(int(m["i"]) for m in shards) == list(range(24)), out
    assert all(m["i"] == m["pod"] for m in shards), "each pod printed its own index"
    per_cluster = {c: sum(1 for m in shards if m["cluster"] == c) for c in
                   {m["cluster"] for m in shards}}
    assert per_cluster == {"analytics-1": 12, "analytics-2": 12}, per_cluster
    inside = sum(int(m["inside"]) for m in shards)
    samples = sum(int(m["samples"]) for m in shards)
    assert abs(4 * inside / samples - math.pi) < 0.01

    def a_report_ran() -> dict[str, Any] | None:
        return next((j for j in reports(api) if verdict(j) == "Complete"), None)
    job = wait_for_sync(a_report_ran, FIRST_REPORT, 0.5, what="a report run Complete")
    name = job["metadata"]["name"]
    lines = running.cli("logs", f"job/{name}", "--all-clusters").stdout.splitlines()
    assert len(lines) == 1, lines
    assert re.match(r"^\[analytics-[12]/report-\d+-[a-z0-9]+\] report .* ok$", lines[0]), lines
    every_run = running.cli("logs", "cronjob/report").stdout.splitlines()
    assert lines[0] in every_run, every_run
    cron = get(api, "/apis/batch/v1/namespaces/default/cronjobs/report")
    assert cron["status"]["lastScheduleTime"]
    assert "report" in running.cli("get", "cronjobs").stdout
    for target in ("job/pi", f"job/{name}"):
        none = running.cli("logs", target, "--cluster", "trading-1", check=False)
        assert none.returncode != 0, "a pod of the analytics work ran on trading-1"
        assert "no pods of" in none.stderr
