"""The import-linter contract that keeps ``sansnet.protocol`` pure is checked by
``.ci/run``; these tests prove the contract holds today and can fail: a copy of the package
with one forbidden import in ``protocol/`` must break it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed")


def run_contracts(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    assert LINT_IMPORTS is not None
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_project(tmp_path: Path) -> Path:
    tree = tmp_path / "project"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_contracts_are_kept(tmp_path: Path) -> None:
    result = run_contracts(copy_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize("forbidden", ["socket", "asyncio", "anyio", "time", "sansnet.transport"])
def test_a_forbidden_import_in_protocol_breaks_the_contract(tmp_path: Path, forbidden: str) -> None:
    tree = copy_project(tmp_path)
    (tree / "src" / "sansnet" / "protocol" / "_violation.py").write_text(
        f"import {forbidden}\n", encoding="utf-8"
    )
    result = run_contracts(tree)
    assert result.returncode != 0
    assert "protocol/ is pure" in result.stdout
    assert "BROKEN" in result.stdout
    assert "sansnet.protocol._violation" in result.stdout
