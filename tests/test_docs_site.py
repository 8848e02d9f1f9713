"""The documentation site builds with warnings as errors (``mkdocs build --strict``), as
the README's "Documentation" section says, so CI catches a broken link, a docstring
mkdocstrings cannot render, or a page missing from the navigation."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None
    or importlib.util.find_spec("mkdocstrings_handlers") is None,
    reason="the docs extra is not installed (pip install -e '.[docs]')",
)


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner is not a build warning
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.search(r"^(WARNING|ERROR)", output, re.M), output
    site = tmp_path / "site"
    # The generated state diagrams made it into the page, and every page of the nav exists.
    states = (site / "states" / "index.html").read_text(encoding="utf-8")
    assert states.count('class="mermaid"') == 3
    assert "generated:" not in states
    for page in ("quickstart", "api/request", "embedding", "limits", "lune", "reference/protocol"):
        assert (site / page / "index.html").is_file(), page


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.M))
    pages = {path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert pages == listed
