"""``system-recipes fleet-host status [MODEL]``: what was applied on this host and whether it
still holds -- one ``status`` event per model (``never-applied``, ``in-sync``, ``drifted``: the
plan of the kept host.cfg has changes or drift, or the file was edited since it was applied;
``error``: it cannot be planned), then ``done`` with the highest of the models' codes (0 in sync, 1 an
error, 2 pending).

Separate from :mod:`.host_step` (plan and apply) as :mod:`.confirm` is: it changes nothing, and
reads the same record and host.cfg through the step it is given (``step.etc``, ``step.state``,
``step.load_and_plan``, ``step.read_record``, ``step.emit``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

from system_recipes.fleet.files import read_text, sha256
from system_recipes.fleet.host.basics import StepError, check_name
from system_recipes.fleet.protocol import Exit, Step

if TYPE_CHECKING:
    from system_recipes.core.plan.actions import Plan
    from system_recipes.core.plan.run import Run


class StatusStep(Protocol):
    """What these functions use of the host step they are given (fleet/host/step.py's
    HostStep), named here: the step module imports this one, not the other way round."""

    etc: str
    state: str

    def emit(self, step: Step, **fields: Any) -> None: ...

    def done(self, result: str, code: Exit, **fields: Any) -> Exit: ...

    def fail(self, error: StepError) -> Exit: ...

    def read_record(self, model: str) -> dict: ...

    def load_and_plan(self, path: str) -> tuple[Run, Plan]: ...


def status(step: StatusStep, model: str | None) -> Exit:
    try:
        models = (
            [check_name(model)]
            if model
            else sorted(name[:-5] for name in os.listdir(step.state) if name.endswith(".json"))
            if os.path.isdir(step.state)
            else []
        )
    except StepError as error:
        return step.fail(error)
    worst = Exit.OK
    for name in models:
        worst = max(worst, status_of(step, name))
    return step.done(
        "ok" if worst == Exit.OK else "pending" if worst == Exit.PENDING else "error",
        worst,
        models=models,
    )


def status_of(step: StatusStep, model: str) -> Exit:
    record = step.read_record(model)
    applied = record.get("applied")
    path = os.path.join(step.etc, model, "host.cfg")
    if not applied or not os.path.exists(path):
        step.emit(Step.STATUS, model=model, result="never-applied", last=record.get("last"))
        return Exit.PENDING
    text = read_text(path) or ""
    from zc.buildout import UserError

    try:
        _, plan = step.load_and_plan(path)
    except UserError as error:
        step.emit(
            Step.STATUS,
            model=model,
            result="error",
            applied=applied,
            error=str(error).splitlines()[0],
        )
        return Exit.ERROR
    edited = sha256(text) != applied.get("config_sha256")
    changed = len(plan.actions)
    drifted = bool(changed or plan.drift or edited)
    step.emit(
        Step.STATUS,
        model=model,
        result="drifted" if drifted else "in-sync",
        applied=applied,
        last=record.get("last"),
        changed=changed,
        drift=[a.path for a in plan.drift],
        config_edited=edited,
    )
    return Exit.PENDING if drifted else Exit.OK
