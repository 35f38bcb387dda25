"""`flotilla logs` targets: which workload a TARGET names and which pods it matches
(the end-to-end runs are tests/up/test_logs.py and tests/placement/test_jobs_e2e.py)."""

from __future__ import annotations

import pytest

from flotilla.cli.logs_cmd import matches, parse_target
from flotilla.cli.session import CliError


@pytest.mark.parametrize(("text", "want"), [
    ("job/shards", ("Job", "shards")),
    ("jobs/shards", ("Job", "shards")),
    ("deploy/shop", ("Deployment", "shop")),
    ("sts/db", ("StatefulSet", "db")),
    ("cronjob/report", ("CronJob", "report")),
    ("cj/report", ("CronJob", "report")),
    ("pod/shop-1", (None, "shop-1")),
    ("shop-1", (None, "shop-1")),
])
def test_targets(text: str, want: tuple[str | None, str]) -> None:
    assert parse_target(text) == want


def test_an_unknown_kind_names_the_job_form() -> None:
    with pytest.raises(CliError, match="job/NAME or cronjob/NAME") as err:
        parse_target("service/shop")
    assert err.value.exit_code == 2


def test_a_job_matches_its_own_pods_only() -> None:
    pod = {"namespace": "default", "name": "shards-3-abcde", "owner": "Job/shards"}
    assert matches(pod, "default", "Job", "shards")
    assert not matches(pod, "default", "Deployment", "shards")
    assert not matches(pod, "other", "Job", "shards")
    assert not matches(pod, "default", "Job", "shard")


def test_a_cronjob_matches_the_pods_of_its_runs() -> None:
    runs = frozenset({"report-29412345", "report-29412346"})
    pod = {"namespace": "default", "name": "report-29412345-x1y2z", "owner": "Job/report-29412345"}
    assert matches(pod, "default", "CronJob", "report", runs)
    assert not matches(pod, "default", "CronJob", "report", frozenset())
    other = {**pod, "owner": "Job/report"}
    assert not matches(other, "default", "CronJob", "report", runs)
