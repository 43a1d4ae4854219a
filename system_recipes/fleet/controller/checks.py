"""A host is done when its own checks pass: its NRPE check commands, run on it.

The commands are read from the host's NRPE include directory by daemons/nrpe.py's reader
(``command[NAME]=...`` lines, as NRPE reads them; ``$$`` means ``$``) and run through the host's control master, each until it
exits 0 or ``--check-timeout`` runs out. Only the checks the compiled configuration gives the
host are run.
"""

from __future__ import annotations

import time
from typing import Protocol

from system_recipes.daemons.nrpe import read_commands
from system_recipes.fleet.compile.prepare import HostJob
from system_recipes.fleet.controller.output import Output
from system_recipes.fleet.controller.transport import Connection

NRPE_INCLUDES = (
    "/etc/nagios/nrpe.d",
    "/etc/nrpe.d",
)  # Debian's, Red Hat's (core/declare/layout.py)


class CheckOptions(Protocol):
    @property
    def check_timeout(self) -> float: ...

    @property
    def check_interval(self) -> float: ...


class CheckingRun(Protocol):
    """What run_checks uses of the run it is given (orchestrate.py's FleetRun, which imports
    this module: named here, not imported from there)."""

    @property
    def settings(self) -> CheckOptions: ...

    @property
    def out(self) -> Output: ...

    def connect(self, job: HostJob) -> Connection: ...


def run_checks(fleet: CheckingRun, job: HostJob) -> str | None:
    """Run the host's own NRPE check commands on it until they pass (``--check-timeout``);
    the commands are read from the host's NRPE include directory, as NRPE reads them."""
    connection = fleet.connect(job)
    listing = connection.raw(
        " ".join(f"cat {d}/*.cfg 2>/dev/null;" for d in NRPE_INCLUDES) + " true"
    ).text
    defined, _ = read_commands("\n".join(listing))  # our own files: their problems are plan's
    commands = {name: command.replace("$$", "$") for name, command in defined.items()}  # NRPE's $
    missing = [name for name in job.checks if name not in commands]
    if missing:
        return f"check {missing[0]} is not defined on the host (in {NRPE_INCLUDES[0]})"
    deadline = time.monotonic() + fleet.settings.check_timeout
    pending = list(job.checks)
    while True:
        failing = []
        for name in pending:
            result = connection.raw(commands[name], timeout=fleet.settings.check_timeout)
            fleet.out.log(
                job.name, f"# check {name}: exit {result.code}: {' '.join(result.text)[:300]}"
            )
            if result.code:
                failing.append((name, result))
        if not failing:
            return None
        if time.monotonic() >= deadline:
            name, result = failing[0]
            output = (result.text or result.stderr.strip().splitlines() or [""])[0]
            return (
                f"check {name} still fails after {fleet.settings.check_timeout:g} s "
                f"(exit {result.code}: {output[:200]})"
            )
        pending = [name for name, _ in failing]
        time.sleep(fleet.settings.check_interval)
