"""Every ```python block in README.md and docs/ runs here, on each backend, so the docs
cannot go stale. A block may use top-level await; a block without it runs in a worker
thread, as a script would. A block that defines pytest tests (functions named test_*)
has them run too, with the anyio backend given."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks() -> list[Any]:
    blocks = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            name = path.relative_to(ROOT).as_posix()
            blocks.append(pytest.param(match.group(1), path, line, id=f"{name}:{line}"))
    return blocks


def test_docs_have_examples() -> None:
    assert len(python_blocks()) >= 8


async def call_test(function: Any, backend: Any) -> None:
    parameters = inspect.signature(function).parameters
    kwargs: dict[str, Any] = {}
    if "anyio_backend" in parameters:
        kwargs["anyio_backend"] = backend
    if "net_mock" in parameters:
        from sansnet.testing import MockRouter, mock

        router = MockRouter()
        async with mock(router):
            await function(net_mock=router, **kwargs)
        return
    result = function(**kwargs)
    if inspect.isawaitable(result):
        await result


@pytest.mark.anyio
@pytest.mark.parametrize(("source", "path", "line"), python_blocks())
async def test_doc_block(source: str, path: Path, line: int, anyio_backend: Any) -> None:
    tree = ast.parse(source, str(path))
    ast.increment_lineno(tree, line - 1)
    code = compile(tree, str(path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    if code.co_flags & inspect.CO_COROUTINE:
        await eval(code, namespace)
    else:
        # Plain code (say, sansnet.blocking) runs outside the event loop, as in a script.
        await anyio.to_thread.run_sync(eval, code, namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            marks = [m.name for m in getattr(value, "pytestmark", [])]
            params = [m for m in getattr(value, "pytestmark", []) if m.name == "parametrize"]
            if params and "anyio_backend" in params[0].args[0]:
                wanted = params[0].args[1][0]
                backend_name = wanted[0] if isinstance(wanted, tuple) else wanted
                current = anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend
                if backend_name != current:
                    continue  # the example is about one backend only
                if isinstance(wanted, tuple) and wanted[1]:
                    # It needs its own event loop (a test clock, say): run it in one.
                    test = value

                    def run_alone(test: Any = test, wanted: Any = wanted) -> None:
                        anyio.run(
                            call_test, test, wanted, backend=wanted[0], backend_options=wanted[1]
                        )

                    await anyio.to_thread.run_sync(run_alone)
                else:
                    await call_test(value, wanted)
            elif "net_virtual_time" in marks:
                # What the plugin's marker does: the backend with a virtual clock.
                from sansnet_pytest import _on_virtual_time

                virtual = _on_virtual_time(anyio_backend)
                if virtual == anyio_backend:
                    continue  # uvloop: its clock cannot be virtual, and the test waits long

                def run_virtual(test: Any = value, virtual: Any = virtual) -> None:
                    anyio.run(
                        call_test, test, virtual, backend=virtual[0], backend_options=virtual[1]
                    )

                await anyio.to_thread.run_sync(run_virtual)
            else:
                assert "anyio" in marks or not inspect.iscoroutinefunction(value)
                await call_test(value, anyio_backend)
