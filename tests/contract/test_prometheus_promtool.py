"""deploy/prometheus checked by Prometheus's own tool: the scrape config and the alert rules must
load, and the rules' unit tests (deploy/prometheus/alerts_test.yml: synthetic series that must
and must not fire) must pass. test_observability_config.py checks the same files against the
code; this one checks them against Prometheus.

promtool comes from deploy/prometheus/install.sh (Debian's package, unpacked into the cache);
without it the promtool tests skip and say so."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CACHED = Path(os.environ.get("KEEL_CACHE_DIR", Path.home() / ".cache" / "keel"))
# The alerts the issue names; each needs a case that fires and one that stays quiet.
ISSUE_ALERTS = ("KeelTaskCompletionRateDrop", "KeelToolErrorSpike", "KeelConsumerLagHigh")


def promtool() -> str | None:
    on_path = shutil.which("promtool")
    if on_path:
        return on_path
    cached = CACHED / "prometheus" / "usr" / "bin" / "promtool"
    return str(cached) if cached.is_file() else None


needs_promtool = pytest.mark.skipif(
    promtool() is None,
    reason="promtool is not on PATH nor in ~/.cache/keel/prometheus: "
    "run deploy/prometheus/install.sh",
)


def run_promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    tool = promtool()
    assert tool is not None
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_the_scrape_config_and_its_rule_file_load() -> None:
    done = run_promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout


@needs_promtool
def test_the_alert_rules_load() -> None:
    done = run_promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    count = sum(len(group["rules"]) for group in rules)
    assert f"SUCCESS: {count} rules found" in done.stdout


@needs_promtool
def test_the_alert_rules_pass_their_unit_tests() -> None:
    done = run_promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests are not vacuous: a lag threshold twice too high makes them fail."""
    shutil.copy(PROMETHEUS_DIR / "alerts_test.yml", tmp_path)
    rules = (PROMETHEUS_DIR / "alerts.yml").read_text()
    broken = rules.replace("(keel_bus_consumer_lag) > 1000", "(keel_bus_consumer_lag) > 2000")
    assert broken != rules
    (tmp_path / "alerts.yml").write_text(broken)
    done = run_promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "KeelConsumerLagHigh" in done.stdout + done.stderr


def test_each_issue_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    cases = [case for test in tests["tests"] for case in test.get("alert_rule_test", [])]
    for alert in ISSUE_ALERTS:
        outcomes = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == alert]
        assert True in outcomes, f"{alert}: no case where it fires"
        assert False in outcomes, f"{alert}: no case where it stays quiet"
