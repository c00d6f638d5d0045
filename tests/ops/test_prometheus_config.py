"""ops/prometheus: promtool accepts the config and rules, and the rules' unit tests pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=OPS, capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


@needs_promtool
def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", "rules/recording.yml", "rules/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    """Synthetic traffic: p95 is computed per route, coach streams do not alert, etc."""
    result = promtool("test", "rules", "tests/rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_targets_the_app_every_5s() -> None:
    text = (OPS / "prometheus.yml").read_text()
    assert "127.0.0.1:8000" in text
    assert re.search(r"scrape_interval:\s*5s", text)
    assert "rules/recording.yml" in text
    assert "rules/alerts.yml" in text


def test_required_rules_exist() -> None:
    recording = (OPS / "rules" / "recording.yml").read_text()
    alerts = (OPS / "rules" / "alerts.yml").read_text()
    for quantile in ("p50", "p95", "p99"):
        assert f"path:momentum_request_duration_seconds:{quantile}_5m" in recording
    assert "sum by (le, path) (rate(momentum_request_duration_seconds_bucket[5m]))" in recording
    assert "job:momentum_requests_errors:ratio_rate5m" in recording
    assert "cache:momentum_cache_hit:ratio_rate5m" in recording
    for alert in (
        "MomentumRouteP95High",
        "MomentumErrorRatioHigh",
        "MomentumCacheHitRatioLow",
        "MomentumLlmSpendOverBudget",
    ):
        assert f"alert: {alert}" in alerts
    # The latency alert leaves the SSE coach streams out.
    assert '/coach/stream/.*|/api/v1/coach/.*"}' in alerts
