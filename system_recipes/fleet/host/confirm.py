"""Confirmed apply: a host that cannot be reached after its apply rolls itself back.

On the host (``fleet-host apply --confirm-timeout S``), after the buildout committed a change,
:func:`arm` keeps the host.cfg the run replaced (``/etc/system-recipes/MODEL/host.cfg.previous``;
before the first apply, a configuration without parts) and what the change reloaded, writes
``/var/lib/system-recipes/fleet/MODEL.confirm.json`` (revision, deadline) and starts a detached
watchdog (``fleet-host watchdog MODEL REVISION``, its own session: it outlives the ssh
connection). The controller checks the host, then confirms over a *new* ssh connection
(``fleet-host confirm MODEL REVISION``: a host that no longer lets it in cannot be confirmed),
which removes the file. At the deadline, a watchdog that still finds the file restores the
previous host.cfg, runs the host buildout with it, runs again the reloads of the change it undid
(a part that went away reloads nothing by itself: its daemon must forget it), puts the record's
``applied`` back and records why in ``last`` (``"result": "rolled-back"``).

A forced file (``force = true``) the change replaced is not put back: removing its part removes
it; keep such files in the previous configuration too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from system_recipes.fleet.files import write_atomic
from system_recipes.fleet.host.basics import StepError
from system_recipes.fleet.protocol import Exit, Step

if TYPE_CHECKING:
    from system_recipes.core.plan.actions import Plan
    from system_recipes.core.plan.run import Run

POLL = 0.2  # how often the watchdog looks for the confirmation


class ConfirmStep(Protocol):
    """What these functions use of the host step they are given (fleet/host/step.py's
    HostStep), named here: the step module imports this one, not the other way round."""

    etc: str
    state: str

    def emit(self, step: Step, **fields: Any) -> None: ...

    def done(self, result: str, code: Exit, **fields: Any) -> Exit: ...

    def fail(self, error: StepError) -> Exit: ...

    def locked(
        self, model: str, wait: float = 0, shared: bool = False
    ) -> AbstractContextManager[None]: ...

    def read_record(self, model: str) -> dict: ...

    def buildout(self, path: str, changes: int) -> None: ...

    def load_and_plan(self, path: str) -> tuple[Run, Plan]: ...


def pending_path(step: ConfirmStep, model: str) -> str:
    return os.path.join(step.state, f"{model}.confirm.json")


def read_pending(step: ConfirmStep, model: str) -> dict | None:
    try:
        with open(pending_path(step, model), encoding="utf-8") as stream:
            return json.load(stream)
    except (FileNotFoundError, ValueError):
        return None


def refuse_if_pending(step: ConfirmStep, model: str) -> None:
    """A new apply while the last one awaits its confirmation would lose what to go back to."""
    pending = read_pending(step, model)
    if pending and pending["deadline"] > time.time():
        raise StepError(
            Step.CONFIRM,
            f"revision {pending['revision']} of {model} awaits its "
            f"confirmation for {pending['deadline'] - time.time():.0f} s more "
            "(then it is rolled back; try again after that)",
        )


def arm(
    step: ConfirmStep,
    model: str,
    header: dict,
    old: str | None,
    new: str,
    plan: Plan | None,
    applied: dict | None,
    timeout: float,
) -> dict:
    """Keep what to go back to and start the watchdog; returns what the controller needs."""
    directory = os.path.join(step.etc, model)
    previous = os.path.join(directory, "host.cfg.previous")
    write_atomic(previous, old if old is not None else without_parts(new))
    info = {
        "model": model,
        "revision": header["revision"],
        "timeout": timeout,
        "deadline": time.time() + timeout,
        "previous": previous,
        "first": old is None,
        "applied": applied,
        "reloads": [[r.kind, r.target] for r in plan.reloads] if plan else [],
    }
    write_atomic(pending_path(step, model), json.dumps(info, indent=2) + "\n")
    log = open(os.path.join(step.state, f"{model}.watchdog.log"), "a")
    code = "import sys; from system_recipes.commands.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.Popen(
        [sys.executable, "-c", code, "fleet-host", "watchdog", model, str(header["revision"])],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
        cwd="/",
    )
    log.close()
    return {"revision": header["revision"], "timeout": timeout}


def without_parts(text: str) -> str:
    """The configuration to go back to before the first apply: the same extends, no parts
    (buildout uninstalls every part the first apply installed)."""
    import configparser

    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.read_string(text)
    extends = parser.get("buildout", "extends", fallback="").split()
    return "[buildout]\n" + (f"extends = {' '.join(extends)}\n" if extends else "") + "parts =\n"


def confirm(step: ConfirmStep, model: str, revision: int) -> Exit:
    """``fleet-host confirm MODEL REVISION``: the controller reached the host anew."""
    from system_recipes.fleet.host.basics import check_name

    try:
        check_name(model)
        with step.locked(model, wait=10):
            pending = read_pending(step, model)
            if pending is None or pending["revision"] != revision:
                last = step.read_record(model).get("last") or {}
                why = (
                    f"revision {revision} was rolled back: {last.get('error')}"
                    if last.get("result") == "rolled-back" and last.get("revision") == revision
                    else f"revision {revision} of {model} awaits no confirmation"
                )
                raise StepError(Step.CONFIRM, why)
            os.unlink(pending_path(step, model))
    except StepError as error:
        return step.fail(error)
    step.emit(Step.CONFIRM, result="ok", revision=revision)
    return step.done("ok", Exit.OK)


def watchdog(step: ConfirmStep, model: str, revision: int) -> int:
    """Wait for the confirmation; without it by the deadline, roll back."""
    while True:
        pending = read_pending(step, model)
        if pending is None or pending["revision"] != revision:
            return 0  # confirmed (or another apply's watchdog took over)
        if time.time() >= pending["deadline"]:
            break
        time.sleep(min(POLL, max(pending["deadline"] - time.time(), 0.01)))
    with step.locked(model, wait=600):
        pending = read_pending(step, model)
        if pending is None or pending["revision"] != revision:
            return 0
        return rollback(step, model, pending)


def rollback(step: ConfirmStep, model: str, pending: dict) -> int:
    from system_recipes.core.declare.specs import Reload
    from system_recipes.core.hooks import reload
    from system_recipes.fleet.files import read_text, sha256

    path = os.path.join(step.etc, model, "host.cfg")
    previous = read_text(pending["previous"]) or ""
    why = f"no confirmation within {pending['timeout']:g} s: rolled back"
    problems: list[str] = []
    write_atomic(path, previous)
    try:
        step.buildout(path, -1)
        run, _ = step.load_and_plan(path)
        _, problems = reload.perform(
            [Reload(kind, target) for kind, target in pending["reloads"]], run.settings
        )
    except StepError as error:
        problems.append(str(error))
    except Exception as error:  # whatever happens, the record says it
        problems.append(f"{type(error).__name__}: {error}")
    if problems:
        why += f" (with problems: {'; '.join(problems)[:500]})"
    if pending["first"]:
        os.unlink(path)
    record = step.read_record(model)
    record["last"] = {
        **(record.get("last") or {}),
        "result": "rolled-back",
        "error": why,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config_sha256": sha256(previous),
    }
    if pending["applied"]:
        record["applied"] = pending["applied"]
    else:
        record.pop("applied", None)
    write_atomic(
        os.path.join(step.state, f"{model}.json"),
        json.dumps(record, indent=2, sort_keys=True) + "\n",
    )
    os.unlink(pending_path(step, model))
    print(f"{model}: revision {pending['revision']}: {why}", file=sys.stderr)
    return 1 if problems else 0
