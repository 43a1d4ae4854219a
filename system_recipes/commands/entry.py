"""The ``system-recipes`` command. ``converge`` and ``fleet-host`` are answered without importing
the rest of the command line, which imports zc.buildout (0.2-0.4 s, pip and setuptools with
it): more than a whole no-op should take, on every host of a fleet run."""

from __future__ import annotations

import sys

from system_recipes.commands.parser import ArgumentParser, Exit


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["converge"]:
        from system_recipes.commands.converge import main as converge

        return converge(argv[1:])
    if argv[:1] == ["fleet-host"]:
        return fleet_host(argv)
    from system_recipes.commands.cli import main as command_line

    return command_line(argv)


def fleet_host(argv: list[str]) -> int:
    """The host's step; only a step that plans imports buildout (the step imports planning
    when it plans)."""
    from system_recipes.fleet.host.step import add_parser, run

    parser = ArgumentParser(prog="system-recipes")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
