"""What every command line shares: the exit statuses (README, "Exit statuses": core's
:class:`~system_recipes.core.declare.exits.Exit`, re-exported) and argparse's parser, which
says a usage mistake in the words of the subcommand that was given.

Imported by ``system-recipes converge`` before anything else, so it imports nothing but the
standard library's argparse (difflib only for a mistake) and the exit statuses (enum alone).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from system_recipes.core.declare.exits import Exit

__all__ = ["ArgumentParser", "Exit", "chosen_subparser", "closest"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, exiting 1 on a usage mistake. An argument no subcommand knows is
    reported by the subcommand that was given (its usage, not the top level's), with the
    closest of its options: ``plan --quite`` -> ``did you mean --quiet?``."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Exit.ERROR, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = chosen_subparser(self, parsed)
            parser.error(f"unrecognized argument {extras[0][:100]!r}{closest(parser, extras[0])}")
        return parsed


def chosen_subparser(
    parser: argparse.ArgumentParser, parsed: argparse.Namespace
) -> argparse.ArgumentParser:
    """The innermost subcommand's parser that ``parsed`` went through (``fleet plan``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(parsed, action.dest, None)
            if name in action.choices:
                return chosen_subparser(action.choices[name], parsed)
    return parser


def closest(parser: argparse.ArgumentParser, argument: str) -> str:
    """`` (did you mean --quiet?)``, or nothing when no option of ``parser`` is close."""
    if not argument.startswith("-"):
        return ""
    import difflib

    name = argument.split("=", 1)[0]
    options = [option for action in parser._actions for option in action.option_strings]
    found = difflib.get_close_matches(name, options, n=1, cutoff=0.75)
    return f" (did you mean {found[0]}?)" if found else ""
