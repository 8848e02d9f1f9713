"""A Griffe extension that lets mkdocstrings render sansnet's docstrings, which are
written in the reStructuredText habits of the Python world (``:class:`Headers```,
``Example::`` literal blocks, ``====`` simple tables), as Markdown.

* ``:class:`~sansnet.Headers``` and the other roles become links (autorefs marked
  optional: a target the site does not document is shown as code, never a warning);
* a paragraph ending in ``::`` is followed by a fenced code block;
* a simple table framed by ``===`` rules becomes a Markdown table.

The docstrings themselves are not changed on disk; this runs while mkdocstrings
loads the package (``extensions:`` in mkdocs.yml).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):`(~?)([^`<>]+)`")
RULE = re.compile(r"^(\s*)(=+)(\s+=+)+\s*$")


class RestructuredTextRoles(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        names: dict[str, str] = {}  # every path, alias or not -> the canonical path
        objects: list[griffe.Object] = []

        def walk(obj: griffe.Object) -> None:
            names[obj.path] = obj.path
            objects.append(obj)
            for member in obj.members.values():
                if isinstance(member, griffe.Alias):
                    names[member.path] = member.target_path
                else:
                    walk(member)

        def inherited(obj: griffe.Object) -> None:
            if isinstance(obj, griffe.Class):
                try:
                    members = obj.inherited_members
                except Exception:  # a base outside the package: nothing to link to
                    members = {}
                for name, member in members.items():
                    names.setdefault(f"{obj.path}.{name}", member.target_path)

        walk(pkg)
        for obj in objects:
            inherited(obj)
        for obj in objects:
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(obj.docstring.value, obj, names)


def resolve(target: str, obj: griffe.Object, names: dict[str, str]) -> str:
    """The canonical path ``target`` names, seen from ``obj``: its own members, its
    parent's, then each enclosing module's, as Sphinx searches; ``target`` itself when
    nothing matches (the link is then optional and renders as code)."""
    scopes = [obj.path]
    if obj.parent is not None:
        scopes.append(obj.parent.path)
    package = obj.module.path
    while package:
        scopes.append(package)
        package = package.rpartition(".")[0]
    relative = target.strip().lstrip(".")
    for path in [*(f"{scope}.{relative}" for scope in scopes), relative]:
        found = _canonical(path, names)
        if found is not None:
            return found
    return relative


def _canonical(path: str, names: dict[str, str], depth: int = 0) -> str | None:
    """The definition ``path`` names, following re-exports (``sansnet.Headers`` is
    ``sansnet.protocol.headers.Headers``) on any prefix; None if it names nothing."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix not in names:
            continue
        target = prefix
        for _ in range(10):
            if names.get(target, target) == target:
                break
            target = names[target]
        full = ".".join([target, *parts[cut:]])
        if cut == len(parts):
            return full
        if full == path or depth > 5:
            return None  # a definition without that member
        return _canonical(full, names, depth + 1)
    return None


def _role(match: re.Match[str], obj: griffe.Object, names: dict[str, str]) -> str:
    short, target = match.group(1), match.group(2)
    identifier = resolve(target, obj, names)
    title = target.lstrip(".")
    if short:
        title = title.rpartition(".")[2]
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def _table(lines: list[str]) -> list[str]:
    """A reST simple table (rule, header, rule, rows, rule) as a Markdown table."""
    rule = lines[0]
    indent = len(rule) - len(rule.lstrip())
    spans = [m.span() for m in re.finditer(r"=+", rule)]
    rows: list[list[str]] = []
    for line in lines[1:]:
        if RULE.match(line) or not line.strip():
            continue
        starts = [start for start, _ in spans]
        ends = [*starts[1:], len(line)]
        cells = [line[start:end].strip() for start, end in zip(starts, ends, strict=True)]
        if rows and not cells[0] and len(rows) > 1:  # a continuation line of the last row
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    pad = " " * indent
    out = [pad + "| " + " | ".join(rows[0]) + " |", pad + "|" + "---|" * len(spans)]
    out += [pad + "| " + " | ".join(row) + " |" for row in rows[1:]]
    return out


def _literal_block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The literal block after a ``::`` paragraph ending at ``lines[start - 1]``; returns
    the fenced block and the index after it."""
    base = len(lines[start - 1]) - len(lines[start - 1].lstrip())
    index = start
    while index < len(lines) and not lines[index].strip():
        index += 1
    first = index
    block: list[str] = []
    indented = index < len(lines) and (len(lines[index]) - len(lines[index].lstrip())) > base
    while index < len(lines):
        line = lines[index]
        if line.strip():
            if indented and len(line) - len(line.lstrip()) <= base:
                break
        elif not indented:
            break
        block.append(line)
        index += 1
    while block and not block[-1].strip():
        block.pop()
    if not block:
        return [], first
    margin = min(len(line) - len(line.lstrip()) for line in block if line.strip())
    body = [line[margin:] for line in block]
    language = "text" if any(ch in "".join(body) for ch in "├└│") else "python"
    pad = " " * base
    fenced = [
        "",
        pad + f"```{language}",
        *(pad + line if line else "" for line in body),
        pad + "```",
        "",
    ]
    return fenced, index


def to_markdown(text: str, obj: griffe.Object, names: dict[str, str]) -> str:
    """``text``, the docstring of ``obj``, with its reST habits turned into Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if RULE.match(line):
            end = index + 1
            rules = 1
            while end < len(lines) and rules < 3:
                if RULE.match(lines[end]):
                    rules += 1
                end += 1
            out.extend(["", *_table(lines[index:end]), ""])
            index = end
            continue
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()
            out.append(stripped[:-2].rstrip() + (":" if stripped[:-2].strip() else ""))
            block, index = _literal_block(lines, index + 1)
            out.extend(block)
            continue
        out.append(line)
        index += 1
    markdown = "\n".join(out)
    return ROLE.sub(lambda match: _role(match, obj, names), markdown)
