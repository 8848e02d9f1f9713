"""The command line, run in-process and as a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sansnet import __version__
from sansnet.cli import main


def test_demo_runs_green(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "%F0%9F%9A%80%20This%20string%20will%20be%20encoded." in out
    assert "All steps passed." in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sansnet", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"sansnet {__version__}"
