"""The preflight of ``fleet apply``: before any host changes, every host is connected, read (its
record and kept host.cfg, in one round trip without sudo) and planned, in parallel. A host that
applied a newer revision of the model, or the same revision of another digest, refuses the whole
run (a stale checkout must not roll the system back); a host with nothing to do is checked and
done here, and the others wait for their wave.

Separate from :mod:`.orchestrate` (the commands, the hosts' runs and the waves) as
:mod:`.host_checks` and :mod:`.confirm` are: functions of the run they are given
(``fleet.connect``, ``fleet.remote``, ``fleet.each``, ``fleet.out``, ...).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from typing import Protocol

from system_recipes.fleet.compile.prepare import HostJob, System
from system_recipes.fleet.controller.output import Output, counted
from system_recipes.fleet.controller.transport import Connection, Result
from system_recipes.fleet.protocol import ETC, STATE, Exit, HostState, Step, event


class PreflightOptions(Protocol):
    @property
    def force(self) -> bool: ...


class PreflightRun(Protocol):
    """What the preflight uses of the run it is given (orchestrate.py's FleetRun, which
    imports this module: named here, not imported from there)."""

    refusals: list[str]

    @property
    def system(self) -> System: ...

    @property
    def settings(self) -> PreflightOptions: ...

    @property
    def out(self) -> Output: ...

    def each(self, work: Callable[[HostJob], HostState]) -> dict[str, HostState]: ...

    def connect(self, job: HostJob) -> Connection: ...

    def remote(
        self, job: HostJob, action: str, stdin: str = "", arguments: Sequence[str] = ()
    ) -> Result: ...

    def failed(self, job: HostJob, result: Result) -> HostState: ...

    def done(
        self,
        job: HostJob,
        connection: Connection,
        changed: int,
        confirm: dict | None = None,
        drift: list[str] | None = None,
    ) -> HostState: ...


def preflight(fleet: PreflightRun) -> dict[str, tuple[dict, str | None]]:
    """Connect every host, read what it applied (its record and kept host.cfg are
    world-readable: no sudo, one round trip) and plan it, in parallel. A host with nothing
    to do is checked and done here; a stale one refuses the run (``fleet.refusals``)."""
    found: dict[str, tuple[dict, str | None]] = {}
    fleet.refusals = []
    model = fleet.system.model.name
    mark = "--- system-recipes kept host.cfg ---"
    command = (
        f"cat {STATE}/{model}.json 2>/dev/null; echo; echo {shlex.quote(mark)}; "
        f"cat {ETC}/{model}/host.cfg 2>/dev/null; true"
    )

    def read(job: HostJob) -> HostState:
        connection = fleet.connect(job)
        lines = connection.raw(command).text
        index = lines.index(mark) if mark in lines else len(lines)
        try:
            record = json.loads("\n".join(lines[:index]) or "{}")
        except ValueError:
            record = {}
        kept = "\n".join(lines[index + 1 :]) + "\n" if index + 1 < len(lines) else None
        found[job.name] = (record, kept)
        refusal = stale(fleet, job.name, record)
        if refusal:
            fleet.refusals.append(refusal)
            return HostState.REFUSED
        fleet.out.state(job.name, HostState.PLANNING)
        result = fleet.remote(job, "plan", job.stdin(), ["--force"] * fleet.settings.force)
        if result.code not in (Exit.OK, Exit.PENDING):
            return fleet.failed(job, result)
        applied = record.get("applied") or {}
        current = (applied.get("revision"), applied.get("digest")) == (
            fleet.system.revision,
            fleet.system.digest,
        )
        job.clean = result.code == Exit.OK  # applying it changes nothing but its record
        if not (job.clean and current):
            plan = event(result.events, Step.PLAN)
            fleet.out.state(
                job.name,
                HostState.WAITING,
                counted(plan.get("changed", 0), "change") if not job.clean else "its record only",
            )
            return HostState.WAITING
        return fleet.done(job, connection, 0)

    fleet.each(read)
    return found


def stale(fleet: PreflightRun, name: str, record: dict) -> str | None:
    applied = record.get("applied") or {}
    if fleet.settings.force or not applied:
        return None
    revision, digest = applied.get("revision", 0), applied.get("digest")
    if revision > fleet.system.revision:
        why = f"revision {revision} applied, newer than this model's {fleet.system.revision}"
    elif revision == fleet.system.revision and digest != fleet.system.digest:
        why = f"revision {revision} applied from another model ({str(digest)[:19]}...)"
    else:
        return None
    fleet.out.state(name, HostState.REFUSED, why)
    return f"{name}: refused: {why} (a stale checkout? update it; --force applies this one anyway)"
