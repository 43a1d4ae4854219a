"""``system-recipes converge -c host.cfg``: the host buildout, with a no-op found before
zc.buildout is even imported.

Importing zc.buildout costs 0.2-0.4 s (pip and setuptools come with it), several times a whole
no-op of the plain-Python floor. So this module, reached through ``system_recipes.entry``
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

from .core import converge_index

USAGE = "usage: system-recipes converge [-h] [-c CONFIG] [-v] [--full] [[section:]option=value ...]"
HELP = f"""{USAGE}

Run the host buildout (buildout -c CONFIG), saying "nothing to do" without importing
zc.buildout when nothing it depends on changed since the last clean run through converge.

options:
  -h, --help            show this help message and exit
  -c CONFIG, --config CONFIG
                        the host configuration (default: buildout.cfg)
  -v, --verbose         buildout's -v (repeatable); also says why a full run is needed
  --full                always run buildout (its extension still takes its own fast path
                        unless the configuration or a watched path changed)
  [section:]option=value
                        override options, as buildout's command line does
"""
EXIT_ERROR = 1


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> tuple[converge_index.Request, bool]:
    config, verbosity, full, assignments = "buildout.cfg", 0, False, []
    arguments = list(argv)
    while arguments:
        argument = arguments.pop(0)
        if argument in ("-c", "--config"):
            if not arguments:
                raise UsageError(f"{argument} needs a file")
            config = arguments.pop(0)
        elif argument.startswith("--config="):
            config = argument.split("=", 1)[1]
        elif argument.startswith("-v") and set(argument[1:]) == {"v"}:
            verbosity += len(argument) - 1
        elif argument == "--verbose":
            verbosity += 1
        elif argument == "--full":
            full = True
        elif "=" in argument and argument[0] != "-":  # [section:]option=value, as buildout's
            assignments.append(argument)
        else:
            raise UsageError(f"unrecognized argument {argument[:100]!r}")
    return converge_index.Request(os.path.abspath(config), tuple(assignments), verbosity), full


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        say(HELP.rstrip("\n"))
        return 0
    try:
        request, full = parse(argv)
    except UsageError as error:
        sys.stderr.write(f"{USAGE}\nsystem-recipes converge: error: {error}\n")
        return EXIT_ERROR
    if not full:
        parts, detail = converge_index.nothing_changed(request)
        if parts is not None:
            say(
                f"system-recipes: nothing to do: {parts} part(s) as the last run left them ({detail})"
            )
            return 0
        if request.verbosity:
            say(f"system-recipes: a full run: {detail}")
    return run_buildout(request)


def run_buildout(request: converge_index.Request) -> int:
    """buildout's own main, in this process: the extension writes the index for ``request``
    after a clean run."""
    from .core import buildout_api  # imports zc.buildout: what the fast path exists to avoid

    converge_index.REQUEST[:] = [request]
    arguments = ["-c", request.config, *(["-v"] * request.verbosity), *request.assignments]
    try:
        buildout_api.run_main(arguments)
    except SystemExit as exit:
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_ERROR)
    return 0
