"""Loading a host configuration without touching the disk: ``plan``, ``explain`` and tests.

The extension is loaded by buildout itself; the commands load the configuration here, with the
same checks (recipe names) and one clear line for a file that is not UTF-8.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import zc.buildout
from zc.buildout.buildout import Buildout

from .buildout_api import file_being_read
from .recipe_names import check_recipe_names


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
        try:
            buildout = Buildout(os.path.abspath(config), options, use_user_defaults=False)
        except UnicodeDecodeError as error:
            raise zc.buildout.UserError(undecodable(error, config)) from None
        check_recipe_names(buildout)  # as the extension does when buildout loads it
        yield buildout
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def undecodable(error: UnicodeDecodeError, config: str) -> str:
    """``host.cfg: byte 55 (line 3) is not UTF-8``: buildout reads every configuration file
    (``extends`` included) as text and fails on the first undecodable byte with a traceback;
    the file is the one it was reading, the offset is found again in the file."""
    filename = file_being_read(error.__traceback__) or config
    try:
        with open(filename, "rb") as stream:
            data = stream.read()
        data.decode(error.encoding)
    except UnicodeDecodeError as again:
        line = data.count(b"\n", 0, again.start) + 1
        return (
            f"{filename}: byte {again.start} (line {line}) is not {error.encoding}: "
            f"{data[again.start : again.start + 1]!r} (expected a {error.encoding} text file)"
        )
    except OSError:
        pass
    return (
        f"{filename}: not {error.encoding} ({error.reason}) (expected a {error.encoding} text file)"
    )
