"""``system-recipes fleet-host plan|apply|status``: one host's whole step, in one remote call.

Standard input (plan and apply): one line of JSON, the header, then the host.cfg text::

    {"model": "shop", "revision": 7, "digest": "sha256:...", "packages": {"shop": "1.0"}}
    [buildout]
    extends = /opt/shop/profiles/base.cfg
    ...

``model`` (a name), ``revision`` (an integer that grows with the model: a host refuses one
older than what it last applied, unless ``--force``), ``digest`` (the model's, recorded),
``packages`` (name -> version or null; optional) and ``host`` (the model's host name; optional,
recorded). The header is checked by :mod:`.host_input`.

Standard output is one JSON object per line, ``{"step": ..., "result": ...}``, the last one
``done`` with the exit status (docs/fleet-transport.md); the rest goes to stderr. Exit: 0 done
and nothing pending, 2 changes pending (plan, status), 1 an error (apply restores the previous
host.cfg, the buildout rolled its own run back). ``status``: :mod:`.host_status`; ``confirm`` and
``watchdog``: :mod:`.confirm`. This module holds the command, plan and apply, and the record.

Kept on the host: ``/etc/system-recipes/MODEL/host.cfg`` (what was applied) and
``/var/lib/system-recipes/fleet/MODEL.json`` (``applied``: revision, digest, config sha256,
time, files changed, packages; ``last``: the last attempt and its result).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from system_recipes.core.fastpath import converge_index
from system_recipes.fleet.files import read_text, sha256, write_atomic
from system_recipes.fleet.host.basics import StepError
from system_recipes.fleet.host.installs import PackageError, Packages
from system_recipes.fleet.host.status import status
from system_recipes.fleet.host.stdin import MAX_INPUT, parse_input
from system_recipes.fleet.protocol import ETC, STATE, Exit, Step

if TYPE_CHECKING:
    from system_recipes.core.plan.actions import Plan
    from system_recipes.core.plan.run import Run

Parser = TypeVar("Parser", bound=argparse.ArgumentParser)  # the command line's own class


def add_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    step = commands.add_parser(
        "fleet-host",
        help="one host's step of a fleet run (what the "
        "controller runs over ssh; stdin: a JSON "
        "header line, then the host.cfg)",
    )
    step.add_argument("action", choices=("plan", "apply", "status", "confirm", "watchdog"))
    step.add_argument(
        "model",
        nargs="?",
        default=None,
        help="status: the model to report "
        "(default: every model applied here); confirm: the model confirmed",
    )
    step.add_argument("revision", nargs="?", type=int, help="confirm: the revision confirmed")
    step.add_argument("--diff", action="store_true", help="plan: a diff event per file")
    step.add_argument(
        "--confirm-timeout",
        type=float,
        default=0,
        metavar="S",
        help="apply: roll back by itself unless `fleet-host confirm MODEL "
        "REVISION` comes within S seconds (0: no confirmation)",
    )
    step.add_argument(
        "--force",
        action="store_true",
        help="apply or plan a revision older than the one last applied",
    )


def run(args: argparse.Namespace) -> int:
    """The command; stdout carries only the JSON lines (fd 1 is kept for them and pointed at
    stderr for everything else: a validator's tool must not break the stream)."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    step = HostStep(out)
    step.diff, step.confirm_timeout = args.diff, args.confirm_timeout
    try:
        if args.action == "status":
            return status(step, args.model)
        if args.action in ("confirm", "watchdog"):
            from system_recipes.fleet.host import confirm

            if args.model is None or args.revision is None:
                return step.fail(StepError(Step.INPUT, f"{args.action} needs MODEL REVISION"))
            return getattr(confirm, args.action)(step, args.model, args.revision)
        return step.plan_or_apply(args.action, sys.stdin.buffer.read(MAX_INPUT + 1), args.force)
    finally:
        out.close()


class HostStep:
    def __init__(self, out: TextIO, etc: str = ETC, state: str = STATE) -> None:
        self.out, self.etc, self.state = out, etc, state
        self.started = time.monotonic()
        self.diff, self.confirm_timeout = False, 0.0

    def emit(self, step: Step, **fields: Any) -> None:
        self.out.write(json.dumps({"step": step, **fields}, sort_keys=False) + "\n")

    def done(self, result: str, code: Exit, **fields: Any) -> Exit:
        self.emit(
            Step.DONE,
            result=result,
            exit=code,
            seconds=round(time.monotonic() - self.started, 3),
            **fields,
        )
        return code

    def fail(self, error: StepError) -> Exit:
        self.emit(error.step, result=error.result, error=str(error))
        print(f"Error: {error}", file=sys.stderr)
        return self.done(error.result, Exit.ERROR)

    # -- plan and apply -----------------------------------------------------------------------

    def plan_or_apply(self, action: str, data: bytes, force: bool) -> int:
        try:
            header, text = parse_input(data)
            with self.locked(header["model"], shared=action == "plan"):
                try:
                    return self._plan_or_apply(action, header, text, force)
                except StepError as error:
                    if action == "apply" and error.result == "error":
                        self.record(header["model"], header, sha256(text), "failed", 0, str(error))
                    raise
        except StepError as error:
            return self.fail(error)

    def _plan_or_apply(self, action: str, header: dict, text: str, force: bool) -> int:
        model = header["model"]
        record = self.read_record(model)
        applied = record.get("applied") or {}
        if applied and header["revision"] < applied["revision"] and not force:
            raise StepError(
                Step.REVISION,
                f"revision {header['revision']} of {model} is older "
                f"than revision {applied['revision']}, applied "
                f"{applied.get('time', '')} (a stale model? --force applies it)",
                result="refused",
            )
        if action == "apply" and self.confirm_timeout:
            from system_recipes.fleet.host.confirm import refuse_if_pending

            refuse_if_pending(self, model)
        self.emit(
            Step.REVISION, result="ok", revision=header["revision"], applied=applied.get("revision")
        )
        packages = Packages(header["packages"])
        missing: list[str] = []
        installed: list[str] = []
        try:
            if action == "plan":
                missing = packages.pending()
                self.emit(
                    Step.PACKAGES,
                    result="pending" if missing else "ok",
                    manager=packages.manager,
                    pending=missing,
                )
            else:
                installed = packages.ensure()
                self.emit(
                    Step.PACKAGES,
                    result="ok",
                    manager=packages.manager,
                    installed=installed,
                    changed=len(installed),
                )
        except PackageError as error:
            raise StepError(Step.PACKAGES, str(error)) from None
        directory = os.path.join(self.etc, model)
        path = os.path.join(directory, "host.cfg")
        old = read_text(path)
        digest = sha256(text)
        self.emit(Step.CONFIG, result="ok", path=path, changed=old != text, sha256=digest)
        # the same host.cfg is planned where it is kept: a no-op writes no file, not even a
        # candidate. An apply plans a new one beside it and replaces it only for the buildout;
        # a plan plans a copy in a scratch directory (it writes nothing on the host)
        same = old == text
        with self.candidate(action, directory, text, same) as candidate:
            # the same host.cfg, no package to install, and the last clean run through
            # converge still holds (core.fastpath: an exact proof): nothing to plan or run
            fast = same and not (missing or installed) and self.nothing_changed(path)
            try:
                plan = None if fast else self.plan(candidate)
            except StepError as error:
                if action == "plan" and missing:
                    # a first install: the configuration reads facts of packages that apply
                    # installs first, so its plan can only be made after them
                    self.emit(
                        Step.PLAN, result="after-packages", changed=0, drift=[], why=str(error)
                    )
                    return self.done("pending", Exit.PENDING)
                raise
            changes = len(plan.actions) if plan else 0
            drift = plan.drift if plan else []
            if action == "plan":
                pending = bool(changes or drift or not same or missing)
                return self.done(
                    "pending" if pending else "ok", Exit.PENDING if pending else Exit.OK
                )
            if not same:
                os.replace(candidate, path)
        try:
            if changes:
                self.buildout(path, changes)
            else:
                self.emit(Step.BUILDOUT, result="unchanged", changed=0)
        except StepError:
            if old is None:
                os.unlink(path)
            elif not same:
                write_atomic(path, old)
            raise
        confirm = None
        if changes and self.confirm_timeout:
            from system_recipes.fleet.host.confirm import arm

            confirm = arm(
                self, model, header, old, text, plan, applied or None, self.confirm_timeout
            )
            self.emit(Step.CONFIRM, result="armed", **confirm)
        self.record(model, header, digest, "ok", changes)
        return self.done(
            "changed" if changes else "ok",
            Exit.OK,
            changed=changes,
            **({"confirm": confirm} if confirm else {}),
        )

    @contextlib.contextmanager
    def candidate(self, action: str, directory: str, text: str, same: bool) -> Iterator[str]:
        """Where the host.cfg to plan is; whatever was written for it is gone afterwards,
        unless an apply moved it into place. A plan writes nothing on the host: its copy is in
        a scratch directory laid out as the kept one (every other entry of ``directory`` and of
        its parent linked there), so that a path relative to the host.cfg (``templates``,
        ``../templates``) reads what it would read there."""
        if same:
            yield os.path.join(directory, "host.cfg")
        elif action == "apply":
            os.makedirs(directory, mode=0o755, exist_ok=True)
            candidate = os.path.join(directory, ".host.cfg.new")
            write_atomic(candidate, text)
            try:
                yield candidate
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(candidate)
        else:
            scratch = tempfile.mkdtemp(prefix="system-recipes-plan-")
            try:
                copy = os.path.join(scratch, os.path.basename(directory))
                os.mkdir(copy, 0o700)
                for kept, into, skip in (
                    (os.path.dirname(directory), scratch, os.path.basename(directory)),
                    (directory, copy, "host.cfg"),
                ):
                    with contextlib.suppress(FileNotFoundError):
                        for name in os.listdir(kept):
                            if name != skip and not name.startswith(".host.cfg"):
                                os.symlink(os.path.join(kept, name), os.path.join(into, name))
                write_atomic(os.path.join(copy, "host.cfg"), text)
                yield os.path.join(copy, "host.cfg")
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def nothing_changed(self, path: str) -> bool:
        parts, detail = converge_index.nothing_changed(converge_index.Request(path))
        if parts is not None:
            self.emit(Step.PLAN, result="ok", changed=0, drift=[], actions=[], fast_path=detail)
        return parts is not None

    def load_and_plan(self, path: str) -> tuple[Run, Plan]:
        """:func:`system_recipes.planning.load_and_plan`, imported here: a step that does not
        plan (a no-op answered from the fast path) never imports zc.buildout."""
        from system_recipes.planning import load_and_plan

        return load_and_plan(path)

    def plan(self, path: str) -> Plan:
        from zc.buildout import UserError  # only a step that plans pays for buildout's import

        try:
            _, plan = self.load_and_plan(path)
        except UserError as error:
            raise StepError(
                Step.PLAN, str(error).splitlines()[0] if str(error) else "failed"
            ) from None
        actions = [f"{a.verb} {a.path}" for a in plan.actions]
        self.emit(
            Step.PLAN,
            result="pending" if actions or plan.drift else "ok",
            changed=len(actions),
            drift=[a.path for a in plan.drift],
            actions=actions[:200],
        )
        if self.diff:
            from system_recipes.core.plan.report import diffs

            for text in diffs(plan):
                self.emit(Step.DIFF, text=text[:65536])
        return plan

    def buildout(self, path: str, changes: int) -> None:
        """The host buildout, as its own process (it configures logging, exits, reloads)."""
        started = time.monotonic()
        result = subprocess.run(
            [converge_script(), "converge", "-c", path],
            capture_output=True,
            text=True,
            cwd=os.path.dirname(path),
        )
        sys.stderr.write(result.stdout + result.stderr)
        if result.returncode:
            lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith(("Error:", "While:"))]
            # the buildout's own line already says "Error:"; fail() and the controller add theirs
            line = (errors or lines or ["failed"])[-1].removeprefix("Error:").strip()
            raise StepError(Step.BUILDOUT, line[:500] or "failed")
        self.emit(
            Step.BUILDOUT,
            result="ok",
            changed=changes,
            seconds=round(time.monotonic() - started, 3),
        )

    # -- the record ---------------------------------------------------------------------------

    def read_record(self, model: str) -> dict:
        text = read_text(os.path.join(self.state, f"{model}.json"))
        if text is None:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            raise StepError(
                Step.REVISION,
                f"{self.state}/{model}.json is damaged (expected the "
                "JSON fleet-host writes; remove it and apply with --force)",
            ) from None

    def record(
        self,
        model: str,
        header: dict,
        config_sha: str,
        result: str,
        changed: int,
        error: str | None = None,
    ) -> None:
        """What was applied; left as it is when a no-op would only change its time."""
        path = os.path.join(self.state, f"{model}.json")
        record = self.read_record(model)
        entry = {
            "revision": header["revision"],
            "digest": header["digest"],
            "host": header.get("host"),
            "config_sha256": config_sha,
            "changed": changed,
            "packages": header["packages"],
        }
        if (
            result == "ok"
            and not changed
            and identity(record.get("last") or {}) == identity({**entry, "result": "ok"})
        ):
            self.emit(Step.RECORD, result="unchanged", path=path)
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record["model"] = model
        record["last"] = {**entry, "result": result, "time": now}
        if error:
            record["last"]["error"] = error
        if result == "ok":
            record["applied"] = {**entry, "time": now}
        os.makedirs(self.state, mode=0o755, exist_ok=True)
        write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
        self.emit(Step.RECORD, result="ok", path=path)

    @contextlib.contextmanager
    def locked(self, model: str, wait: float = 0, shared: bool = False) -> Iterator[None]:
        """One fleet-host at a time per model on a host (a second is refused, not queued;
        ``wait``: seconds to wait first -- a confirmation, a watchdog). ``shared`` (a plan,
        which writes nothing): with other plans, never during an apply; on the lock file an
        apply left, and none before the first apply (a plan creates nothing on a host)."""
        path = os.path.join(self.state, f".{model}.lock")
        if shared:
            try:
                handle = open(path, encoding="utf-8")
            except FileNotFoundError:
                yield
                return
        else:
            os.makedirs(self.state, mode=0o755, exist_ok=True)
            handle = open(path, "w", encoding="utf-8")
        deadline = time.monotonic() + wait
        with handle:
            while True:
                try:
                    fcntl.flock(
                        handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
                    )
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StepError(
                            Step.LOCK, f"another fleet-host is running for {model} on this host"
                        ) from None
                    time.sleep(0.05)
            yield


def identity(entry: dict) -> dict:
    """What an apply was, apart from when it ran and what it changed."""
    return {k: v for k, v in entry.items() if k not in ("time", "changed")}


def converge_script() -> str:
    """The system-recipes of the installation running this command (the same venv's): its
    ``converge`` is the host buildout, and leaves the index the next step's fast path reads."""
    beside = os.path.join(os.path.dirname(sys.executable), "system-recipes")
    return (
        beside if os.path.exists(beside) else (shutil.which("system-recipes") or "system-recipes")
    )
