"""Every ```python block of README.md runs here, on each async backend, so the README
cannot go stale. Top-level ``await`` is allowed in a block."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 2
        blocks.append(pytest.param(match.group(1), line, id=f"{path.name}:{line}"))
    return blocks


def test_readme_has_examples() -> None:
    assert len(python_blocks(README)) >= 2


async def run_block(source: str, filename: str, line: int) -> None:
    tree = ast.parse(source, filename)
    ast.increment_lineno(tree, line - 1)
    code = compile(tree, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    result = eval(code, namespace)
    if inspect.isawaitable(result):
        await result


@pytest.mark.anyio
@pytest.mark.parametrize(("source", "line"), python_blocks(README))
async def test_readme_block(source: str, line: int) -> None:
    await run_block(source, str(README), line)
