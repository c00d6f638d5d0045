"""scripts/: the stack script parses (and passes shellcheck when installed)."""

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
