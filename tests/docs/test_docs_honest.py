"""The documents say what the code does: no "in progress", "not yet" or "TODO" in README.md,
docs/**/*.md or profiles/**/*.md, except under a heading that says "Roadmap" (what is really
not built goes there, and says so); and no docstring of system_recipes/ says "TODO" instead of
what its module, class or function does."""

from __future__ import annotations

import ast
import glob
import os
import re

from support.paths import REPO

WORDS = re.compile(r"in progress|not yet|\bTODO\b", re.IGNORECASE)
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
FENCE = re.compile(r"^\s*(```|~~~)")


def documents() -> list[str]:
    found = ["README.md"]
    for top in ("docs", "profiles"):
        found += glob.glob(os.path.join(REPO, top, "**", "*.md"), recursive=True)
    return sorted(os.path.relpath(os.path.join(REPO, p), REPO) for p in found)


def unfinished(text: str) -> list[tuple[int, str]]:
    """(line number, line) of each line saying a thing is unfinished outside a Roadmap section
    (a section ends at the next heading of its level or above; ``#`` in a fenced block is no
    heading)."""
    hits = []
    roadmap: int | None = None  # the level of the Roadmap heading we are under
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            if roadmap is not None and level <= roadmap:
                roadmap = None
            if roadmap is None and "roadmap" in heading.group(2).lower():
                roadmap = level
        if roadmap is None and WORDS.search(line):
            hits.append((number, line.strip()))
    return hits


def test_the_scanner_exempts_only_a_roadmap_section():
    text = (
        "# Tool\nDone.\n## Roadmap\nSharding is not yet built.\n### Later\nTODO: more.\n"
        "```sh\n# not a heading\n```\nstill in progress here\n## Usage\nApply is in progress.\n"
    )
    assert unfinished(text) == [(12, "Apply is in progress.")]
    assert unfinished("# A\n```\n## Roadmap\n```\nnot yet\n") == [(5, "not yet")]


def test_the_documents_say_what_the_code_does():
    assert "docs/architecture.md" in documents() and "profiles/README.md" in documents()
    hits = []
    for path in documents():
        with open(os.path.join(REPO, path), encoding="utf-8") as stream:
            hits += [f"{path}:{n}: {line}" for n, line in unfinished(stream.read())]
    assert hits == [], (
        "say what the code does, or move what is not built into a section whose heading says "
        "Roadmap:\n" + "\n".join(hits)
    )


def docstrings(path: str) -> list[tuple[int, str, str]]:
    """(line, name, docstring) of the module at ``path`` and of each class and function in it."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=False)
            if text is not None:
                name = getattr(node, "name", "the module")
                found.append((getattr(node, "lineno", 1), name, text))
    return found


def test_no_docstring_of_the_package_says_todo():
    package = os.path.join(REPO, "system_recipes")
    paths = sorted(glob.glob(os.path.join(package, "**", "*.py"), recursive=True))
    assert os.path.join(package, "daemons", "nrpe.py") in paths
    hits = [
        f"{os.path.relpath(path, REPO)}:{line}: {name}: {text.strip()[:60]}"
        for path in paths
        for line, name, text in docstrings(path)
        if re.search(r"\bTODO\b", text, re.IGNORECASE)
    ]
    assert hits == [], "say what it does (what it knows, how it asks, why):\n" + "\n".join(hits)
