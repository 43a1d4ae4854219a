"""The ``system-recipes`` command: ``converge`` is answered without importing the rest of the
command line (which imports zc.buildout: 0.2-0.4 s, more than a whole no-op should take)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["converge"]:
        from .converge import main as converge

        return converge(argv[1:])
    from .cli import main as command_line

    return command_line(argv)
