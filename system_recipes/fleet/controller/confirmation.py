"""The controller's side of a confirmed apply (the host's side: fleet/host/confirm.py): once a
host's checks pass, confirm over a *new* ssh connection -- a host that no longer lets the
controller in cannot be confirmed, and rolls itself back at its deadline."""

from __future__ import annotations

import subprocess
from typing import Protocol

from system_recipes.fleet.compile.prepare import HostJob, System
from system_recipes.fleet.controller.output import Output
from system_recipes.fleet.controller.ssh_problems import explain, last_line
from system_recipes.fleet.controller.transport import Connection


class ConfirmingRun(Protocol):
    """What confirm_from_controller uses of the run it is given (orchestrate.py's FleetRun,
    which imports this module: named here, not imported from there)."""

    @property
    def system(self) -> System: ...

    @property
    def out(self) -> Output: ...

    def connect(self, job: HostJob) -> Connection: ...


def confirm_from_controller(fleet: ConfirmingRun, job: HostJob, info: dict) -> str | None:
    """Confirm the revision ``info`` names on ``job``'s host. Returns a problem, or None."""
    connection = fleet.connect(job)
    try:
        result = connection.run_over_new_connection(
            "confirm", [fleet.system.model.name, str(info["revision"])], info["timeout"] + 30
        )
    except subprocess.TimeoutExpired:
        return f"confirmation timed out; the host rolls back by itself within {info['timeout']:g} s"
    fleet.out.log(
        job.name,
        f"# confirm over a new connection: exit {result.returncode}\n"
        + result.stdout
        + result.stderr,
    )
    if result.returncode == 0:
        return None
    if result.returncode == 255:
        why = explain(connection, result.stderr)
    else:
        why = last_line(result.stderr) or f"fleet-host confirm exited {result.returncode}"
    return f"not confirmed ({why}); the host rolls back by itself within {info['timeout']:g} s"
