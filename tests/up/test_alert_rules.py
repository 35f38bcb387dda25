"""The shipped alert rules: valid for Prometheus, and each one fires on the series it
is about and stays quiet on healthy ones (`promtool test rules`, the unit tests in
deploy/prometheus/alerts_test.yml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="promtool (Debian's prometheus, "
                                    "installed by scripts/test.sh) is missing")


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([str(promtool), "check", "rules", "alerts.yml"], cwd=RULES,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_rule_passes_its_promtool_unit_tests() -> None:
    result = subprocess.run([str(promtool), "test", "rules", "alerts_test.yml"], cwd=RULES,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_unit_test() -> None:
    rules = {r["alert"] for g in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
             for r in g["rules"]}
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", [])
              if t.get("exp_alerts")}
    assert rules == tested, f"rules without a firing unit test: {sorted(rules - tested)}"
