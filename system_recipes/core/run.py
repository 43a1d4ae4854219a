"""One buildout run as a transaction: declare -> validate -> plan -> apply -> commit -> reload.

Recipes only *declare* what they want (in ``__init__``, so every part has rendered before
buildout uninstalls or installs anything). ``install``/``update``/``uninstall`` only *stage*
parts. The buildout extension's unload hook, which buildout calls only after a run that
succeeded, applies every staged change under the journal, writes the manifest (the commit
point) and runs the batched reloads. A failure anywhere before that leaves the disk untouched;
a failure while applying rolls the journal back; a killed run is rolled back by the next run.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import signal
import time

from . import accounts, fsops, reload, report
from .errors import ConfigError, RunError
from .journal import Journal
from .manifest import MANIFEST_NAME, Manifest
from .model import GENERATED_FROM, PartSpec
from .plan import Action, Plan, Planner
from .settings import Settings, settings_from_buildout
from .validate import Item, Validation

ATTRIBUTE = "_system_recipes_run"
# Fault injection for the crash tests: SIGKILL this process after N applied actions.
FAULT_KILL_AFTER = "SYSTEM_RECIPES_FAULT_KILL_AFTER"


_LATEST: list[Run] = []


def current(buildout=None) -> Run | None:
    """The run of ``buildout``; without it, the latest run of this process (for uninstallers,
    which buildout calls without the buildout)."""
    if buildout is None:
        return _LATEST[-1] if _LATEST else None
    return getattr(buildout, ATTRIBUTE, None)


class Run:
    def __init__(self, buildout, settings: Settings | None = None, mode: str = "apply"):
        self.buildout = buildout
        self.settings = settings or settings_from_buildout(buildout)
        self.mode = mode  # "apply" or "plan"
        self.declared: dict[str, PartSpec] = {}
        self.staged: dict[str, PartSpec | None] = {}
        self.validation = Validation(self.settings.validate)
        self.validated = False
        self._lock_fd: int | None = None
        self.state = self.settings.state_path
        self.journal = Journal(self.settings.root, os.path.join(self.state, "journal"))
        self.last_plan: Plan | None = None
        self._manifest: Manifest | None = None
        self._declared_plan: tuple[dict[str, PartSpec], Plan] | None = None
        #: meta section -> its expansion (set by whoever expands: the extension, plan)
        self.expansions: dict = {}
        #: buildout's -v: diffs and buildout's own lines are shown
        self.verbose = _verbosity(buildout) > 0
        setattr(buildout, ATTRIBUTE, self)
        _LATEST[:] = [self]

    # -- lock and recovery -----------------------------------------------------------------
    def acquire(self) -> None:
        if self.mode == "apply":
            os.makedirs(self.state, mode=0o700, exist_ok=True)
            os.makedirs(os.path.join(self.state, self.settings.instance), mode=0o700,
                        exist_ok=True)
        elif not os.path.isdir(self.state):
            return  # nothing was ever applied: nothing to lock against
        path = os.path.join(self.state, "lock")
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags if self.mode == "apply" else os.O_RDONLY | os.O_CLOEXEC, 0o600) \
            if self.mode == "apply" or os.path.exists(path) else None
        if fd is None:
            return
        kind = fcntl.LOCK_EX if self.mode == "apply" else fcntl.LOCK_SH
        deadline = time.monotonic() + self.settings.lock_timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise RunError(f"another system-recipes run holds {path} "
                                   f"(pid {self._holder(path)}); gave up after "
                                   f"{self.settings.lock_timeout}s (lock-timeout)") from None
                if not told:
                    report.say(f"system-recipes: waiting for another run "
                               f"(pid {self._holder(path)}) to finish")
                    told = True
                time.sleep(0.2)
        if self.mode == "apply":
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        if self.mode == "apply":
            outcome, count = self.journal.recover(Manifest.read_bytes(self.state))
            if outcome == "rolled back":
                report.say(f"system-recipes: rolled back {count} change(s) of an interrupted run")

    @staticmethod
    def _holder(path: str) -> str:
        try:
            with open(path) as stream:
                return stream.read().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

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
        names = set(self.buildout["buildout"].get("parts", "").split())
        return names | set(getattr(self.buildout, "_parts", []))

    def build_plan(self, specs: dict[str, PartSpec | None]) -> Plan:
        manifest = self.manifest()
        orphans = set(manifest.parts) - set(specs) - self.configured_parts()
        if self.mode == "plan":
            orphans = set(manifest.parts) - set(specs)
        parts = self.buildout["buildout"].get("parts", "").split()
        order: dict[str, int] = {}
        for index, name in enumerate(parts):
            order.setdefault(name, index)
        specs = dict(sorted(specs.items(), key=lambda item: (
            order.get(item[0], len(parts)), item[0])))
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
        items = [Item(a.part, a.file, check) for a in plan.actions
                 if a.file is not None and a.verb in ("create", "update") for check in a.file.checks]
        findings = self.validation.run(items)
        generated = getattr(self.buildout, GENERATED_FROM, {})
        errors = [f"[{generated[(f.part, None)][0]}] in the generated {f}"
                  if (f.part, None) in generated else str(f) for f in findings if f.fatal]
        for f in findings:
            if not f.fatal:
                report.say(f"system-recipes: warning: {f}")
        if errors:
            raise RunError("\n".join(errors))

    # -- apply and commit ------------------------------------------------------------------
    def commit(self) -> Plan:
        # every declared part staged and nothing else (a no-op or a plain update run): the plan
        # made before the first stage still holds, since nothing was written in between
        planned = self._declared_plan
        if planned is not None and planned[0].keys() == self.staged.keys() and all(
                planned[0][name] is spec for name, spec in self.staged.items()):
            plan = planned[1]
        else:
            plan = self.build_plan(dict(self.staged))
        self.last_plan = plan
        if plan.changed or plan.adopted:
            self._apply(plan)
        self.protect_buildout_state()
        for line in report.part_lines(plan, "past", self.expansions):
            report.say(line)
        if self.verbose:
            for text in report.diffs(plan):
                report.say(text.rstrip("\n"))
        done, problems = reload.perform(plan.reloads, self.settings)
        report.say(report.summary(plan, done, "past"))
        if problems:
            raise RunError("configuration written, but reloading failed: " + "; ".join(problems))
        return plan

    def _apply(self, plan: Plan) -> None:
        manifest = self.manifest(fresh=True)
        root = self.settings.root
        current: Action | None = None
        try:
            accounts_done = False
            for action in plan.actions:
                current = action
                if action.verb == "account":
                    if not accounts_done:
                        self.journal.before_accounts_change()
                        accounts_done = True
                    self._apply_account(action)
            kill_after = int(os.environ.get(FAULT_KILL_AFTER, "0") or 0)
            for done, action in enumerate(plan.actions, start=1):
                current = action
                self._apply_one(action, manifest)
                if done == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            self._record_unchanged(plan, manifest)
            data = manifest.dumps()
            self.journal.committing(data)
            fsops.write_file(root, os.path.join(self.settings.state_directory, MANIFEST_NAME),
                             data, 0o600, 0, 0)
            self.journal.discard()
            self._manifest = None
        except Exception as error:
            undone = self.journal.rollback()
            where = f"[{current.part}] {current.path}: " if current else ""
            raise RunError(f"{where}{_reason(error)}; rolled back {undone} change(s), "
                           "nothing was changed") from None

    def _apply_account(self, action: Action) -> None:
        account = action.account
        root = self.settings.root
        if account.user is None:
            accounts.create_group(root, account.group)
        else:
            accounts.create_user(root, account.user, account.group, account.home, account.shell)

    def _ids(self, part: str, user: str, group: str) -> tuple[int, int]:
        found = accounts.find_user(self.settings.root, user)
        gid = accounts.find_group(self.settings.root, group)
        if found is None or gid is None:
            raise ConfigError(part, "owner", f"no such user or group {user}:{group}")
        return found.uid, gid

    def _apply_one(self, action: Action, manifest: Manifest) -> None:
        root = self.settings.root
        books = manifest.parts.setdefault(action.part, {"files": {}, "directories": {}})
        books.setdefault("files", {})
        books.setdefault("directories", {})
        spec = self.declared.get(action.part)
        if spec is not None:
            books["recipe"] = spec.recipe
            books["removal_reloads"] = [[r.kind, r.target] for r in spec.removal_reloads]
        created: list[str] = []
        if action.verb == "mkdir" or (action.verb == "chmod" and action.directory is not None):
            item = action.directory
            uid, gid = self._ids(action.part, item.owner, item.group)
            if action.verb == "mkdir":
                self.journal.created_directories([action.path])
            else:
                self.journal.before_metadata_change(action.path, action.old, "dir")
            made = fsops.make_directory(root, item.path, item.mode, uid, gid, created)
            self.journal.created_directories(created)
            previous = books["directories"].get(item.path, {})
            entry = {"created": previous.get("created", made), "mode": item.mode,
                     "owner": item.owner, "group": item.group}
            found = previous.get("found")
            if found is None and action.verb == "chmod" and not entry["created"]:
                # not ours: what it was before, put back when the part is removed
                found = {"mode": action.old.mode, "uid": action.old.uid, "gid": action.old.gid}
            if found is not None:
                entry["found"] = found
            books["directories"][item.path] = entry
        elif action.verb in ("create", "update", "chmod"):
            item = action.file
            uid, gid = self._ids(action.part, item.owner, item.group)
            if action.backup:
                self._backup(action)
            if action.verb == "chmod":
                self.journal.before_metadata_change(action.path, action.old, "file")
                fsops.set_metadata(root, item.path, item.mode, uid, gid)
            else:
                self.journal.before_file_change(action.path, action.old)
                fsops.write_file(root, item.path, item.content, item.mode, uid, gid, created)
                self.journal.created_directories(created)
            manifest.claim(action.path, action.part)
            books["files"][item.path] = file_books(item)
        elif action.verb == "remove":
            if action.backup:
                self._backup(action)
            self.journal.before_file_change(action.path, action.old)
            fsops.remove_file(root, action.path)
            books["files"].pop(action.path, None)
        elif action.verb in ("link", "relink"):
            item = action.link
            if action.backup:
                self._backup(action)
            self.journal.before_link_change(action.path, action.old)
            fsops.make_symlink(root, item.path, item.target, created,
                               replace_file=action.backup)
            self.journal.created_directories(created)
            manifest.claim(action.path, action.part)
            books.setdefault("links", {})[item.path] = {"target": item.target}
        elif action.verb == "unlink":
            self.journal.before_link_change(action.path, action.old)
            fsops.remove_file(root, action.path)
            books.get("links", {}).pop(action.path, None)
        elif action.verb == "facts":
            books["facts"] = dict(action.facts)
        elif action.verb in ("keep", "forget"):
            books["files"].pop(action.path, None)
            books["directories"].pop(action.path, None)
            books.get("links", {}).pop(action.path, None)
        elif action.verb == "restore":
            found = books["directories"][action.path]["found"]
            self.journal.before_metadata_change(action.path, action.old, "dir")
            fsops.set_metadata(root, action.path, found["mode"], found["uid"], found["gid"])
            books["directories"].pop(action.path, None)
        elif action.verb == "rmdir":
            fsops.remove_empty_directory(root, action.path)  # only when empty: never loses files
            books["directories"].pop(action.path, None)

    def _record_unchanged(self, plan: Plan, manifest: Manifest) -> None:
        """Adopted files (identical content already there) and parts that are now empty (a
        part that only records facts is empty once it is no longer configured)."""
        live = self.configured_parts()
        for part, paths in plan.adopted.items():
            spec = self.declared[part]
            books = manifest.parts.setdefault(part, {"files": {}, "directories": {},
                                                     "recipe": spec.recipe})
            for item in spec.files:
                if item.path in paths:
                    books.setdefault("files", {})[item.path] = file_books(item)
            for link in spec.links:
                if link.path in paths:
                    books.setdefault("links", {})[link.path] = {"target": link.target}
        for part in list(manifest.parts):
            books = manifest.parts[part]
            if "links" in books and not books["links"]:
                del books["links"]  # manifests of parts without links stay as they were
            if not books.get("files") and not books.get("directories") and \
                    not books.get("links") and (not books.get("facts") or part not in live):
                del manifest.parts[part]

    def _backup(self, action: Action) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
        target = os.path.join(self.settings.state_directory, "backups", stamp,
                              action.path.lstrip("/"))
        fsops.write_file(self.settings.root, target, action.old.data, action.old.mode,
                         action.old.uid, action.old.gid)
        action.note = (action.note + "; " if action.note else "") + f"backup in {target}"

    def protect_buildout_state(self) -> None:
        """``installed.cfg`` holds every option, secrets included: keep it private."""
        installed = self.buildout["buildout"].get("installed")
        if installed and os.path.isfile(installed) and not os.path.islink(installed):
            os.chmod(installed, 0o600)


def _verbosity(buildout) -> int:
    """How many -v buildout was given (it adds 10 to ``verbosity`` per -v)."""
    try:
        return int(buildout["buildout"].get("verbosity", 0) or 0)
    except (ValueError, TypeError, KeyError):
        return 0


def file_books(item) -> dict:
    """A file's entry in the manifest: what was written, and whether it may ever be shown."""
    return {"sha256": item.sha256, "mode": item.mode, "owner": item.owner, "group": item.group,
            "secret": item.secret}


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror if not error.filename else f"{error.strerror}: {error.filename}"
    return str(error)
