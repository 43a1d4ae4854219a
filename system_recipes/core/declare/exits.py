"""The exit statuses of every system-recipes command, defined once (README, "Exit statuses").

A module of the standard library's :mod:`enum` alone: ``system-recipes converge`` imports it
(through commands/parser.py) before anything else.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """What a command exits with. Plan's 2 means "changes pending", so a usage error is 1 like
    any other error, not argparse's 2."""

    OK = 0
    #: an error: a model or configuration mistake, a usage error, a failed step or preflight
    ERROR = 1
    #: changes pending (plan, a fleet plan or status, an apply that left a file edited by hand)
    PENDING = 2
    #: a fleet run: some hosts failed, were refused or unreachable
    FAILED = 3
    #: a fleet apply stopped by --max-fail in its waves
    STOPPED = 4
    #: 128 + SIGINT
    INTERRUPTED = 130
    #: 128 + SIGPIPE: what a shell reports for a writer killed by a closed pipe
    CLOSED_PIPE = 141
