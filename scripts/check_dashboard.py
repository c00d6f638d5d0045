#!/usr/bin/env python3
"""Ask a running Prometheus to evaluate every query of a Grafana dashboard; fail on any error.

    python scripts/check_dashboard.py [--url http://127.0.0.1:9090] [--dashboard FILE]
                                      [--expect-data REGEX]...

Grafana macros ($__rate_interval, $__interval, $__range, ...) are replaced by fixed durations
first, as Grafana itself would. An empty result is fine (no traffic yet) unless the query
matches an --expect-data pattern. Standard library only, so it runs with any python3.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DASHBOARD = ROOT / "ops" / "grafana" / "momentum.json"

# Longest names first so $__range_s is not eaten by $__range.
MACROS = {
    "$__rate_interval": "1m",
    "$__interval_ms": "15000",
    "$__interval": "15s",
    "$__range_ms": "3600000",
    "$__range_s": "3600",
    "$__range": "1h",
}


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def extract_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expr) for every target of every panel, in dashboard order."""
    found = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                found.append((panel.get("title", f"panel {panel.get('id')}"), expr))
    return found


def expand_macros(expr: str) -> str:
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value).replace("${" + macro[1:] + "}", value)
    leftover = re.findall(r"\$\{?\w+", expr)
    if leftover:
        raise ValueError(f"unknown dashboard variable(s) {leftover} in: {expr}")
    return expr


def query(url: str, expr: str, timeout: float) -> dict[str, Any]:
    """GET /api/v1/query; returns the decoded JSON body, also for 4xx (bad_data) answers."""
    full = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:  # noqa: S310 - http(s) URL given by the operator
            return json.load(resp)
    except urllib.error.HTTPError as err:  # Prometheus answers 400/422 with a JSON error body
        body = err.read().decode("utf-8", "replace")
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            return {"status": "error", "errorType": f"http {err.code}", "error": body[:300]}


def check(url: str, dashboard_path: Path, expect_data: list[str], timeout: float) -> int:
    dashboard = json.loads(dashboard_path.read_text())
    exprs = extract_exprs(dashboard)
    if not exprs:
        print(f"FAIL no expr found in {dashboard_path}")
        return 1
    failures = 0
    for title, raw in exprs:
        try:
            expr = expand_macros(raw)
            body = query(url, expr, timeout)
        except (ValueError, OSError) as err:
            print(f"ERROR  {title}: {raw}\n       {err}")
            failures += 1
            continue
        if body.get("status") != "success":
            print(f"ERROR  {title}: {raw}\n       {body.get('errorType')}: {body.get('error')}")
            failures += 1
            continue
        n = len(body["data"]["result"]) if isinstance(body["data"]["result"], list) else 1
        must_have_data = any(re.search(p, raw) for p in expect_data)
        if must_have_data and n == 0:
            print(f"EMPTY  {title}: {raw}  (expected data)")
            failures += 1
            continue
        print(f"ok     {n:3d} series  {title}: {raw}")
    print(f"{len(exprs) - failures}/{len(exprs)} dashboard queries passed on {url}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:9090", help="Prometheus base URL")
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD)
    parser.add_argument(
        "--expect-data",
        action="append",
        default=[],
        metavar="REGEX",
        help="queries matching REGEX must return at least one series (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    return check(args.url, args.dashboard, args.expect_data, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
