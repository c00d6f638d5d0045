"""ops/grafana/momentum.json: a well-formed dashboard whose every panel has a query."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "momentum.json"
RECORDING = ROOT / "ops" / "prometheus" / "rules" / "recording.yml"


def load_check_dashboard() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_dashboard", ROOT / "scripts" / "check_dashboard.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out += [panel, *panel.get("panels", [])]
    return [p for p in out if p["type"] != "row"]


def test_dashboard_shape(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] == "Momentum"
    assert dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_every_panel_has_an_expr_on_the_prometheus_input(dashboard: dict[str, Any]) -> None:
    panels = query_panels(dashboard)
    assert len(panels) >= 8
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{panel['title']} {target['refId']}: no expr"
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


def test_dashboard_covers_what_ops_asked_for(dashboard: dict[str, Any]) -> None:
    exprs = "\n".join(t["expr"] for p in query_panels(dashboard) for t in p["targets"])
    for needle in (
        "path:momentum_request_duration_seconds:p95_5m",  # p95 per route
        "rate(momentum_requests_total",  # request rate
        'status_code=~"5.."',  # errors
        "cache:momentum_cache_hit:ratio_rate5m",  # cache hit ratio
        "momentum_db_pool_checked_out",  # DB pool in use
        "momentum_llm_time_to_first_token_seconds",  # TTFT p95
        "momentum_llm_tokens_total",  # tokens per route
        "momentum_llm_cost_usd",  # spend per route
    ):
        assert needle in exprs, needle


def test_recorded_series_used_by_the_dashboard_exist(dashboard: dict[str, Any]) -> None:
    recorded = set(re.findall(r"record:\s*(\S+)", RECORDING.read_text()))
    exprs = [t["expr"] for p in query_panels(dashboard) for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", e)}
    assert used, "the dashboard should read recording rules"
    assert used <= recorded, used - recorded


def test_check_dashboard_extracts_and_expands_every_expr(dashboard: dict[str, Any]) -> None:
    check = load_check_dashboard()
    found = check.extract_exprs(dashboard)
    n_targets = sum(len(p["targets"]) for p in query_panels(dashboard))
    assert len(found) == n_targets
    for _title, expr in found:
        expanded = check.expand_macros(expr)
        assert "$" not in expanded
    assert check.expand_macros("rate(x[$__rate_interval])") == "rate(x[1m])"
    assert check.expand_macros("increase(x[${__range}])") == "increase(x[1h])"
    with pytest.raises(ValueError, match="unknown dashboard variable"):
        check.expand_macros('rate(x{path=~"$path"}[5m])')
