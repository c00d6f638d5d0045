"""A real Prometheus scrapes a real server under traffic: the p95 recording rule returns
data and every Grafana dashboard query is accepted (scripts/check_dashboard.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.live import free_port, live_server

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "rules"
PROMETHEUS = shutil.which("prometheus")
P95_RULE = "path:momentum_request_duration_seconds:p95_5m"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="Prometheus not installed (Debian `prometheus`)"),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from dataclasses import replace

    from app.settings import get_settings
    from tests.conftest import migrate_and_seed

    db = tmp_path_factory.mktemp("prom") / "prom.db"
    migrate_and_seed(replace(get_settings(), database_url=f"sqlite+aiosqlite:///{db}"))
    log = tmp_path_factory.mktemp("prom-log") / "server.log"
    with live_server({"DATABASE_URL": f"sqlite+aiosqlite:///{db}"}, log) as base:
        yield base


def _traffic(base: str, stop: threading.Event) -> None:
    paths = [
        "/api/v1/challenges",
        "/api/v1/challenges/3",
        "/api/v1/leaderboard",
        "/",
        "/fragments/trending",
        "/api/v1/challenges/999999",
        "/no-such-page",
    ]
    with httpx.Client(base_url=base, timeout=5) as client:
        while not stop.is_set():
            for path in paths:
                client.get(path)
            time.sleep(0.05)


@pytest.fixture(scope="module")
def prometheus(app_url: str) -> Iterator[str]:
    tmp = Path(tempfile.mkdtemp(prefix="momentum-prom-"))
    port = free_port()
    target = app_url.removeprefix("http://")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES / 'recording.yml'}\n  - {RULES / 'alerts.yml'}\n"
        "scrape_configs:\n  - job_name: momentum\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    proc = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30  # until ready it answers 503 in plain text
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


def _query(prom: str, expr: str) -> list[dict[str, object]]:
    res = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert res["status"] == "success", res
    result: list[dict[str, object]] = res["data"]["result"]
    return result


def test_p95_rule_and_every_dashboard_query_work_on_live_data(
    app_url: str, prometheus: str
) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=_traffic, args=(app_url, stop), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 90
        series: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            try:
                series = _query(prometheus, P95_RULE)
            except (httpx.HTTPError, ValueError):  # not up yet: no JSON to read
                series = []
            if series:
                break
            time.sleep(1)
        assert series, f"{P95_RULE} returned no data within 90 s"
        routes = {s["metric"]["path"] for s in series}  # type: ignore[index]
        assert "/api/v1/challenges" in routes
        assert not any("999999" in str(r) for r in routes), "routes are templates, never raw ids"
        counted = _query(prometheus, 'sum(momentum_requests_total{status_code="404"})')
        assert counted and float(counted[0]["value"][1]) > 0, "404s are counted"  # type: ignore[index]
        checked = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "check_dashboard.py"), "--url", prometheus],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        stop.set()
        worker.join(timeout=10)
