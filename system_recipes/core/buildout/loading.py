"""Loading a host configuration without touching the disk: ``plan``, ``explain`` and tests.

The extension is loaded by buildout itself; the commands load the configuration here, with the
same checks (recipe names) and one clear line for a file that cannot be read (core.reading).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import zc.buildout
from zc.buildout.buildout import Buildout

from system_recipes.core.buildout.api import ReadingBuildout
from system_recipes.core.buildout.recipe_names import check_recipe_names


def cloptions(assignments: list[str]) -> list[tuple[str, str, str]]:
    """``section:option=value`` arguments as buildout's command line takes them (no section:
    ``[buildout]``)."""
    result = []
    for text in assignments:
        target, sep, value = text.partition("=")
        section, colon, option = target.rpartition(":")
        if not sep or not colon:
            raise zc.buildout.UserError(f"{text!r}: expected section:option=value")
        result.append((section or "buildout", option, value))
    return result


@contextlib.contextmanager
def loaded(config: str, assignments: list[str] | None = None) -> Iterator[Buildout]:
    """buildout's reading of ``config`` (with ``section:option=value`` overrides), without
    touching the disk: buildout creates its eggs directory when it loads, so that is scratch."""
    scratch = tempfile.mkdtemp(prefix="system-recipes-")
    try:
        options = cloptions(assignments or []) + [
            ("buildout", "eggs-directory", scratch),
            ("buildout", "log-level", "WARNING"),
        ]
        buildout = ReadingBuildout(os.path.abspath(config), options, use_user_defaults=False)
        check_recipe_names(buildout)  # as the extension does when buildout loads it
        yield buildout
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
