"""``system-recipes converge -c host.cfg``: the host buildout, with a no-op found before
zc.buildout is even imported.

Importing zc.buildout costs 0.2-0.4 s (pip and setuptools come with it), several times a whole
no-op of the plain-Python floor. So this module, reached through ``system_recipes.commands.entry``
without importing the rest of the command line, first checks the index the last clean run
through ``converge`` left (core.converge_index): the sha256 of every configuration file (with its
extends), the same command line, then -- holding the run's lock, with no journal pending --
the record of that run: the code, and the lstat of every path it depends on. Only when all of
it is equal does it say "nothing to do"; otherwise it runs buildout in this process with the
same arguments (whose extension checks the same record again, with the configuration read).

Exit statuses: buildout's (0 converged, 1 an error); a usage error is 1.
"""

from __future__ import annotations

import os
import sys

from system_recipes.commands.parser import ArgumentParser, Exit
from system_recipes.core.fastpath import converge_index


def build_parser() -> ArgumentParser:
    """The same options as ``system-recipes converge --help`` shows; buildout's own command
    line takes the same ``-c``, ``-v`` and ``[section:]option=value``."""
    parser = ArgumentParser(
        prog="system-recipes converge",
        description='Run the host buildout (buildout -c CONFIG), saying "nothing to do" '
        "without importing zc.buildout when nothing it depends on changed since the last "
        "clean run through converge.",
    )
    parser.add_argument(
        "-c",
        "--config",
        default="buildout.cfg",
        help="the host configuration (default: %(default)s)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="buildout's -v (repeatable); also says why a full run is needed",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="always run buildout (its extension still takes its own fast path unless the "
        "configuration or a watched path changed)",
    )
    parser.add_argument(
        "assignments",
        nargs="*",
        metavar="[section:]option=value",
        help="override options, as buildout's command line does",
    )
    return parser


def parse(argv: list[str]) -> tuple[converge_index.Request, bool]:
    parser = build_parser()
    args = parser.parse_args(argv)
    for assignment in args.assignments:
        if "=" not in assignment:
            parser.error(
                f"unrecognized argument {assignment[:100]!r} (expected [section:]option=value)"
            )
    request = converge_index.Request(
        os.path.abspath(args.config), tuple(args.assignments), args.verbose
    )
    return request, args.full


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    request, full = parse(argv)  # a usage mistake exits 1, as every command's
    if not full:
        parts, detail = converge_index.nothing_changed(request)
        if parts is not None:
            say(
                f"system-recipes: nothing to do: {parts} part(s) as the last run left them ({detail})"
            )
            return Exit.OK
        if request.verbosity:
            say(f"system-recipes: a full run: {detail}")
    return run_buildout(request)


def run_buildout(request: converge_index.Request) -> int:
    """buildout's own main, in this process: the extension writes the index for ``request``
    after a clean run."""
    from system_recipes.core.buildout import api as buildout_api

    converge_index.REQUEST[:] = [request]
    arguments = ["-c", request.config, *(["-v"] * request.verbosity), *request.assignments]
    try:
        buildout_api.run_main(arguments)
    except SystemExit as exit:
        code = exit.code
        return code if isinstance(code, int) else (Exit.OK if code is None else Exit.ERROR)
    return Exit.OK
