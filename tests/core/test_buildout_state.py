"""buildout's own books (installed.cfg): written once per successful run, private, and not
growing with every run; a failed run leaves them as they were."""

from __future__ import annotations

import os

import pytest
from support.results import ok, one_error_line

PROFILE = """
[buildout]
extends = {base}
parts = %(parts)s

[system-recipes]
root = {root}
%(sections)s
"""


def profile(scratch, count: int, broken: bool = False) -> None:
    sections = []
    for i in range(count):
        mode = "0999" if broken and i == count - 1 else "0644"
        sections.append(
            f"[file{i}]\nrecipe = system_recipes:template\npath = /etc/demo/f{i}\n"
            f"text = file {i}\nmode = {mode}\n"
        )
    scratch.write(
        PROFILE
        % {"parts": " ".join(f"file{i}" for i in range(count)), "sections": "\n".join(sections)}
    )


def installed(scratch) -> str:
    return os.path.join(scratch.root, "var/lib/system-recipes/host/installed.cfg")


@pytest.mark.sandbox
def test_installed_cfg_is_written_once_private_and_does_not_grow(scratch):
    profile(scratch, 20)
    ok(scratch.buildout())
    path = installed(scratch)
    assert os.stat(path).st_mode & 0o777 == 0o600
    text = open(path).read()
    assert text.count("[file") == 20 and text.count("[buildout]") == 1
    assert "nothing to do: 20 part(s)" in ok(scratch.buildout()).stdout  # the fast path
    sizes = []
    for _ in range(3):  # full runs: buildout's own books are rewritten, and stay the same
        out = ok(scratch.buildout("system-recipes:fast-path=off")).stdout
        assert "20 unchanged" in out
        sizes.append(os.path.getsize(path))
        assert open(path).read().count("[buildout]") == 1
    assert sizes[0] == sizes[1] == sizes[2], sizes
    assert os.stat(path).st_mode & 0o777 == 0o600


@pytest.mark.sandbox
def test_a_failed_run_leaves_buildouts_books_as_they_were(scratch):
    profile(scratch, 3)
    ok(scratch.buildout())
    before = open(installed(scratch), "rb").read()
    profile(scratch, 5, broken=True)
    one_error_line(scratch.buildout(), "[file4] mode")
    assert open(installed(scratch), "rb").read() == before
    profile(scratch, 5)
    out = ok(scratch.buildout()).stdout
    assert "2 created" in out and "3 unchanged" in out, out
    assert open(installed(scratch)).read().count("[file") == 5
