"""scripts/ and `python -m app serve`: the stack script parses (and passes shellcheck when
installed); serve refuses a setup that cannot work."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "scripts" / "stack.sh"


def test_stack_script_parses() -> None:
    subprocess.run(["bash", "-n", str(STACK)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_stack_script_shellcheck() -> None:
    result = subprocess.run(["shellcheck", str(STACK)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_stack_script_usage() -> None:
    result = subprocess.run(["bash", str(STACK)], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "up|down|status" in result.stderr


def test_serve_refuses_several_workers_without_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each worker would keep its own sessions: sign-ins would come and go between requests."""
    from dataclasses import replace

    from app import cli
    from app.settings import get_settings

    monkeypatch.setattr(cli, "get_settings", lambda: replace(get_settings(), redis_url=None))
    args = cli.build_parser().parse_args(["serve", "--workers", "2"])
    assert args.func(args) == 2
    assert "REDIS_URL" in capsys.readouterr().err
