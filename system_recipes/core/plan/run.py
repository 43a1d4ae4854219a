"""One buildout run as a transaction: declare -> validate -> plan -> apply -> commit -> reload.

Recipes only *declare* what they want (in ``__init__``, so every part has rendered before
buildout uninstalls or installs anything). ``install``/``update``/``uninstall`` only *stage*
parts. The buildout extension's unload hook, which buildout calls only after a run that
succeeded, applies every staged change under the journal, writes the manifest (the commit
point) and runs the batched reloads. A failure anywhere before that leaves the disk untouched;
a failure while applying rolls the journal back; a killed run is rolled back by the next run.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from system_recipes.core.buildout import api as buildout_api
from system_recipes.core.buildout import install as buildout_install
from system_recipes.core.buildout.install import DeferredInstalled
from system_recipes.core.buildout.unused_sections import check_sections_used
from system_recipes.core.declare.errors import RunError
from system_recipes.core.declare.settings import Settings, settings_from_buildout
from system_recipes.core.declare.specs import GENERATED_FROM, Expansion, PartSpec
from system_recipes.core.disk.journal import Journal
from system_recipes.core.disk.manifest import Manifest
from system_recipes.core.disk.skeleton import Skeleton
from system_recipes.core.fastpath import record as fastpath
from system_recipes.core.hooks import reload
from system_recipes.core.hooks.validate import Item, Validation, ValidationContext
from system_recipes.core.plan import report
from system_recipes.core.plan.actions import Plan
from system_recipes.core.plan.apply import Apply
from system_recipes.core.plan.planner import Planner

if TYPE_CHECKING:  # zc.buildout has no annotations: mypy takes a Buildout for what it is
    from zc.buildout.buildout import Buildout

ATTRIBUTE = "_system_recipes_run"


_LATEST: list[Run] = []


def current(buildout: Buildout | None = None) -> Run | None:
    """The run of ``buildout``; without it, the latest run of this process (for uninstallers,
    which buildout calls without the buildout)."""
    if buildout is None:
        return _LATEST[-1] if _LATEST else None
    return getattr(buildout, ATTRIBUTE, None)


class Run:
    def __init__(
        self, buildout: Buildout, settings: Settings | None = None, mode: str = "apply"
    ) -> None:
        self.buildout = buildout
        self.settings: Settings = settings or settings_from_buildout(buildout)
        self.mode: str = mode  # "apply" or "plan"
        self.declared: dict[str, PartSpec] = {}
        self.staged: dict[str, PartSpec | None] = {}
        self.validation = Validation(self.settings.validate)
        self.validated: bool = False
        self._lock_fd: int | None = None
        self.state: str = self.settings.state_path
        #: what this run made before applying anything, taken back if it fails (``release``)
        self.skeleton = Skeleton()
        #: the run applied its plan and wrote the manifest: what it made stays
        self.committed: bool = False
        self.journal = Journal(self.settings.root, os.path.join(self.state, "journal"))
        self.last_plan: Plan | None = None
        self._manifest: Manifest | None = None
        self._declared_plan: tuple[dict[str, PartSpec], Plan] | None = None
        #: meta section -> its expansion (see ``expand``)
        self.expansions: dict[str, Expansion] = {}
        #: buildout's installed.cfg, written once after the commit (see ``defer_installed_writes``)
        self.installed_state: DeferredInstalled | None = None
        #: buildout's -v: diffs and buildout's own lines are shown
        self.verbose: bool = _verbosity(buildout) > 0
        #: what recovery found at the start ('clean', 'committed' or 'rolled back')
        self.recovered: str = "clean"
        #: warnings said (a run with any is not clean: the fast path must not skip them)
        self.warnings: int = 0
        #: the configuration key of this run, when it may leave a fast-path record
        self.fastpath_key: str | None = None
        setattr(buildout, ATTRIBUTE, self)
        _LATEST[:] = [self]

    # -- lock and recovery -----------------------------------------------------------------
    def acquire(self) -> None:
        """Take the state directory's lock (waiting up to lock-timeout), then recover what a
        killed run left. A run that applies registers ``release`` to run at exit: a run that
        fails takes back what it made (see ``release``)."""
        fd: int | None
        if self.mode == "apply":
            atexit.register(self.release)
            fd = self._lock_for_apply()
        else:
            fd = self._lock_for_plan()
        if fd is None:
            return
        self._lock_fd = fd
        if self.mode == "apply":
            outcome, count = self.journal.recover(Manifest.read_bytes(self.state))
            self.recovered = outcome
            if outcome == "rolled back":
                report.say(f"system-recipes: rolled back {count} change(s) of an interrupted run")
            # what this run may change in the state before it fails (a journal made and
            # discarded, a directory of buildout's): their times are put back
            self.skeleton.keep_times(self.state)
            self.skeleton.keep_times(os.path.join(self.state, self.settings.instance))

    def _lock_for_plan(self) -> int | None:
        path = os.path.join(self.state, "lock")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # nothing was ever applied: nothing to lock against
        except PermissionError as error:
            raise RunError(not_permitted(error, self.state, "read")) from None
        self._wait(fd, path, fcntl.LOCK_SH)
        return fd

    def _lock_for_apply(self) -> int:
        """The lock file is never written (the holder's pid comes from /proc/locks), so a run
        changes nothing of it; a run that finds it gone once it holds it (a failed first run
        removed it) takes the one there now."""
        path = os.path.join(self.state, "lock")
        while True:
            try:
                self.skeleton.makedirs(self.state)
                self.skeleton.makedirs(os.path.join(self.state, self.settings.instance))
                fd = self._open_lock(path)
            except PermissionError as error:
                raise RunError(not_permitted(error, self.state)) from None
            self._wait(fd, path, fcntl.LOCK_EX)
            try:
                now = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            held = os.fstat(fd)
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return fd
            os.close(fd)

    def _open_lock(self, path: str) -> int:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return os.open(path, flags)
        self.skeleton.note(path)
        return fd

    def _wait(self, fd: int, path: str, kind: int) -> None:
        deadline = time.monotonic() + self.settings.lock_timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = lock_holder(fd)
                    os.close(fd)
                    raise RunError(
                        f"another system-recipes run holds {path} (pid {holder}); gave up "
                        f"after {self.settings.lock_timeout}s (lock-timeout)"
                    ) from None
                if not told:
                    report.say(
                        f"system-recipes: waiting for another run (pid {lock_holder(fd)}) to finish"
                    )
                    told = True
                time.sleep(0.2)

    def release(self) -> None:
        """The end of a run: a run that did not commit first takes back what it made (the
        state directory on a first run, the lock file, buildout's directories), then the lock
        goes. Called by the extension, and at exit for a run that failed in between."""
        atexit.unregister(self.release)
        if not self.committed:
            self.skeleton.undo()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- what the extension and ``plan`` set up ----------------------------------------------
    def expand(self, expander: Callable[[object], dict[str, Expansion]]) -> None:
        """Meta sections become level-1 sections before any part is built. ``expander`` is
        ``meta.expand.expand``: the meta floor is above this one, so its caller passes it."""
        self.expansions = expander(self.buildout)

    def defer_installed_writes(self) -> None:
        """buildout's ``installed.cfg`` is written by ``flush_installed``, after the commit;
        the directories buildout makes for itself are noted, to go if the run fails."""
        self.installed_state = buildout_install.defer_installed_writes(self.buildout)
        buildout_install.note_buildout_directories(
            self.buildout, self.skeleton.makedirs, self.skeleton.note
        )

    def flush_installed(self) -> None:
        if self.installed_state is not None:
            self.installed_state.flush()

    # -- recipes talk to the run through these ---------------------------------------------
    def declare(self, spec: PartSpec) -> None:
        self.declared[spec.name] = spec

    def stage(self, name: str) -> None:
        self.staged[name] = self.declared[name]
        self.validate_declared()

    def stage_removal(self, name: str) -> None:
        self.staged.setdefault(name, None)
        self.validate_declared()

    # -- planning --------------------------------------------------------------------------
    def manifest(self, fresh: bool = False) -> Manifest:
        """The manifest as the run started. Recipes and planning only read it, and each part
        asks for it, so it is parsed once; ``fresh`` gives a private copy to change."""
        if fresh or self._manifest is None:
            manifest = Manifest.parse(Manifest.read_bytes(self.state), self.settings.instance)
            if fresh:
                return manifest
            self._manifest = manifest
        return self._manifest

    def configured_parts(self) -> set[str]:
        return buildout_api.configured_parts(self.buildout)

    def build_plan(self, specs: Mapping[str, PartSpec | None]) -> Plan:
        check_sections_used(self.buildout)  # every part is constructed by now (buildout's install)
        manifest = self.manifest()
        orphans = set(manifest.parts) - set(specs) - self.configured_parts()
        if self.mode == "plan":
            orphans = set(manifest.parts) - set(specs)
        parts = self.buildout["buildout"].get("parts", "").split()
        order: dict[str, int] = {}
        for index, name in enumerate(parts):
            order.setdefault(name, index)
        specs = dict(
            sorted(specs.items(), key=lambda item: (order.get(item[0], len(parts)), item[0]))
        )
        plan = Planner(self.settings, manifest).plan(specs, orphans)
        self._validate(plan)
        return plan

    def validate_declared(self) -> None:
        """Before the first change of a run: plan and validate every declared part."""
        if not self.validated:
            self.validated = True
            specs = dict(self.declared)
            self._declared_plan = (specs, self.build_plan(specs))

    def _validate(self, plan: Plan) -> None:
        items = [
            Item(a.part, a.file, check)
            for a in plan.actions
            if a.file is not None and a.verb in ("create", "update")
            for check in a.file.checks
        ]
        context = ValidationContext(
            root=self.settings.root,
            planned_directories=frozenset(
                d.path for spec in self.declared.values() for d in spec.directories
            ),
            leaving=frozenset(a.path for a in plan.actions if a.verb in ("remove", "forget")),
        )
        with fastpath.paused():
            findings = self.validation.run(items, context)
        generated = getattr(self.buildout, GENERATED_FROM, {})
        errors, judged = [], set()
        for f in findings:
            if not f.fatal or (f.part, f.path) in judged:
                continue  # one line per file: its first problem (its program's, if missing)
            judged.add((f.part, f.path))
            errors.append(
                f"[{generated[(f.part, None)][0]}] in the generated {f}"
                if (f.part, None) in generated
                else str(f)
            )
        for f in findings:
            if not f.fatal:
                self.warnings += 1
                report.say(f"system-recipes: warning: {f}")
        if errors:
            raise RunError("\n".join(errors))

    # -- apply and commit ------------------------------------------------------------------
    def commit(self) -> Plan:
        # every declared part staged and nothing else (a no-op or a plain update run): the plan
        # made before the first stage still holds, since nothing was written in between
        planned = self._declared_plan
        if (
            planned is not None
            and planned[0].keys() == self.staged.keys()
            and all(planned[0][name] is spec for name, spec in self.staged.items())
        ):
            plan = planned[1]
        else:
            plan = self.build_plan(dict(self.staged))
        self.last_plan = plan
        if plan.changed or plan.adopted:
            self._apply(plan)
        self.committed = True
        self.skeleton.forget()
        self.protect_buildout_state()
        for line in report.part_lines(plan, "past", self.expansions):
            report.say(line)
        if self.verbose:
            report.say_diffs(plan)  # coloured on a terminal
        done, problems = reload.perform(plan.reloads, self.settings, verbose=self.verbose)
        report.say(report.summary(plan, done, "past"))
        if problems:
            raise RunError("configuration written, but reloading failed: " + "; ".join(problems))
        return plan

    def _apply(self, plan: Plan) -> None:
        # the plan is made: the copy as the run started goes before the one to change is read
        # (two manifests at once were 9 MB of a commit's peak at 1000 services)
        self._manifest = None
        Apply(self.settings, self.journal, self.declared, self.manifest(fresh=True)).run(
            plan, self.configured_parts()
        )
        self._manifest = None

    def protect_buildout_state(self) -> None:
        """``installed.cfg`` holds every option, secrets included: keep it private."""
        installed = self.buildout["buildout"].get("installed")
        if installed and os.path.isfile(installed) and not os.path.islink(installed):
            os.chmod(installed, 0o600)


def lock_holder(fd: int) -> str:
    """The pid(s) of the other processes holding a lock on ``fd``'s file, from /proc/locks;
    "?" when it cannot be told. (An overlay reports another device there: the inode alone
    names it when no device matches.)"""
    held = os.fstat(fd)
    try:
        with open("/proc/locks", encoding="ascii") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return "?"
    device = f"{os.major(held.st_dev):02x}:{os.minor(held.st_dev):02x}"
    exact: list[str] = []
    same_inode: list[str] = []
    for line in lines:
        fields = line.split()  # 1: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE START END
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[4] == str(os.getpid()):
            continue
        where, _, inode = fields[5].rpartition(":")
        if inode == str(held.st_ino):
            (exact if where == device else same_inode).append(fields[4])
    found = sorted(set(exact or same_inode), key=int)
    return ", ".join(found) if found else "?"


def not_permitted(error: OSError, state: str, access: str = "write") -> str:
    """The one line for a state directory this user cannot write (or, planning, read); one
    slash: the root joined to the state directory is normalized."""
    return f"cannot {access} the state directory {os.path.normpath(state)}: {error.strerror}" + (
        f" (a run needs root: run it as root, or give this user {access} access to the state "
        "directory)"
        if os.geteuid() != 0
        else ""
    )


def _verbosity(buildout: Buildout) -> int:
    """How many -v buildout was given (it adds 10 to ``verbosity`` per -v)."""
    try:
        return int(buildout["buildout"].get("verbosity", 0) or 0)
    except (ValueError, TypeError, KeyError):
        return 0
