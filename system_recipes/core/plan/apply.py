"""A plan applied below the root: each change journaled before it is made, one method per kind
of change, and the manifest's books kept beside it; the manifest written last (the commit).

Any failure rolls the journal back and is reported as one line naming the part and path.
"""

from __future__ import annotations

import datetime
import os
import signal

from system_recipes.core.declare.errors import ConfigError, RunError
from system_recipes.core.declare.settings import Settings
from system_recipes.core.declare.specs import FileSpec, PartSpec
from system_recipes.core.disk import accounts, fsops
from system_recipes.core.disk.journal import Journal
from system_recipes.core.disk.manifest import MANIFEST_NAME, Manifest
from system_recipes.core.plan.actions import Action, Plan

# Fault injection for the crash tests: SIGKILL this process after N applied actions, or in
# the Nth file write (its temporary file written, not yet renamed into place).
FAULT_KILL_AFTER = "SYSTEM_RECIPES_FAULT_KILL_AFTER"
FAULT_KILL_WRITING = "SYSTEM_RECIPES_FAULT_KILL_WRITING"


def _kill_in_write(count: int) -> None:
    writes = [0]

    def before_rename(host_path: str) -> None:
        writes[0] += 1
        if writes[0] == count:
            os.kill(os.getpid(), signal.SIGKILL)

    fsops.before_rename = before_rename


class Apply:
    """One plan's changes, made and recorded in ``manifest`` (a private copy of the run's)."""

    #: verb -> the method that makes that kind of change; a verb without one (``account``,
    #: applied first by ``run``) only gets its part's books
    VERBS = {
        "mkdir": "directory",
        "chmod": "metadata",
        "create": "file",
        "update": "file",
        "remove": "remove",
        "link": "link",
        "relink": "link",
        "unlink": "unlink",
        "facts": "facts",
        "keep": "forget",
        "forget": "forget",
        "restore": "restore",
        "rmdir": "rmdir",
    }

    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        declared: dict[str, PartSpec],
        manifest: Manifest,
    ):
        self.settings, self.root = settings, settings.root
        self.journal, self.declared, self.manifest = journal, declared, manifest

    def run(self, plan: Plan, live: set[str]) -> None:
        """Apply every action, then commit the manifest; ``live``: the configured parts."""
        current: Action | None = None
        try:
            accounts_done = False
            for action in plan.actions:
                current = action
                if action.verb == "account":
                    if not accounts_done:
                        self.journal.before_accounts_change()
                        accounts_done = True
                    self.account(action)
            kill_after = int(os.environ.get(FAULT_KILL_AFTER, "0") or 0)
            if os.environ.get(FAULT_KILL_WRITING):
                _kill_in_write(int(os.environ[FAULT_KILL_WRITING]))
            for done, action in enumerate(plan.actions, start=1):
                current = action
                self.one(action)
                if done == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            self.record_unchanged(plan, live)
            data = self.manifest.dumps()
            manifest_path = os.path.join(self.settings.state_directory, MANIFEST_NAME)
            self.journal.committing(data, manifest_path)
            fsops.write_file(self.root, manifest_path, data, 0o600, 0, 0)
            self.journal.discard()
        except Exception as error:
            undone = self.journal.rollback()
            where = f"[{current.part}] {current.path}: " if current else ""
            raise RunError(
                f"{where}{_reason(error)}; rolled back {undone} change(s), nothing was changed"
                f"{not_root(error)}"
            ) from None

    def one(self, action: Action) -> None:
        books = self.books(action.part)
        method = self.VERBS.get(action.verb)
        if method is not None:
            getattr(self, method)(action, books)

    def books(self, part: str) -> dict:
        """The manifest's entry of ``part``, with its recipe and removal reloads as declared."""
        books = self.manifest.parts.setdefault(part, {"files": {}, "directories": {}})
        books.setdefault("files", {})
        books.setdefault("directories", {})
        spec = self.declared.get(part)
        if spec is not None:
            books["recipe"] = spec.recipe
            books["removal_reloads"] = [[r.kind, r.target] for r in spec.removal_reloads]
        return books

    # -- one method per kind of change ---------------------------------------------------------
    def account(self, action: Action) -> None:
        account = action.account
        assert account is not None  # the planner gives every "account" action its AccountSpec
        if account.user is None:
            accounts.create_group(self.root, account.group)
        else:
            accounts.create_user(
                self.root, account.user, account.group, account.home, account.shell
            )

    def metadata(self, action: Action, books: dict) -> None:
        """chmod: of a directory or of a file."""
        if action.directory is not None:
            self.directory(action, books)
        else:
            self.file(action, books)

    def directory(self, action: Action, books: dict) -> None:
        item = action.directory
        assert item is not None  # mkdir, and chmod of a directory, carry their DirSpec
        uid, gid = self.ids(action.part, item.owner, item.group)
        if action.verb == "mkdir":
            self.journal.before_write(action.path)  # its missing parents, then itself
            self.journal.created_directories([action.path])
        else:
            assert action.old is not None  # a chmod is planned from what is on disk
            self.journal.before_metadata_change(action.path, action.old, "dir")
        made = fsops.make_directory(self.root, item.path, item.mode, uid, gid)
        previous = books["directories"].get(item.path, {})
        entry = {
            "created": previous.get("created", made),
            "mode": item.mode,
            "owner": item.owner,
            "group": item.group,
        }
        found = previous.get("found")
        if found is None and action.verb == "chmod" and not entry["created"]:
            assert action.old is not None
            # not ours: what it was before, put back when the part is removed
            found = {"mode": action.old.mode, "uid": action.old.uid, "gid": action.old.gid}
        if found is not None:
            entry["found"] = found
        books["directories"][item.path] = entry

    def file(self, action: Action, books: dict) -> None:
        item = action.file
        assert item is not None  # create, update and chmod of a file carry their FileSpec
        uid, gid = self.ids(action.part, item.owner, item.group)
        if action.backup:
            self.backup(action)
        if action.verb == "chmod":
            assert action.old is not None  # a chmod is planned from what is on disk
            self.journal.before_metadata_change(action.path, action.old, "file")
            fsops.set_metadata(self.root, item.path, item.mode, uid, gid)
        else:
            self.journal.before_write(action.path)
            self.journal.before_file_change(action.path, action.old)
            fsops.write_file(self.root, item.path, item.content, item.mode, uid, gid)
        self.manifest.claim(action.path, action.part)
        books["files"][item.path] = file_books(item)

    def remove(self, action: Action, books: dict) -> None:
        if action.backup:
            self.backup(action)
        self.journal.before_file_change(action.path, action.old)
        fsops.remove_file(self.root, action.path)
        books["files"].pop(action.path, None)

    def link(self, action: Action, books: dict) -> None:
        item = action.link
        assert item is not None  # link and relink carry their LinkSpec
        if action.backup:
            self.backup(action)
        self.journal.before_write(action.path)
        self.journal.before_link_change(action.path, action.old)
        fsops.make_symlink(self.root, item.path, item.target, replace_file=action.backup)
        self.manifest.claim(action.path, action.part)
        books.setdefault("links", {})[item.path] = {"target": item.target}

    def unlink(self, action: Action, books: dict) -> None:
        self.journal.before_link_change(action.path, action.old)
        fsops.remove_file(self.root, action.path)
        books.get("links", {}).pop(action.path, None)

    def facts(self, action: Action, books: dict) -> None:
        assert action.facts is not None  # a "facts" action carries the facts to record
        books["facts"] = dict(action.facts)

    def forget(self, action: Action, books: dict) -> None:
        """keep (left on disk) and forget: only the books change."""
        books["files"].pop(action.path, None)
        books["directories"].pop(action.path, None)
        books.get("links", {}).pop(action.path, None)

    def restore(self, action: Action, books: dict) -> None:
        """A directory that was not ours gets back the metadata it had when we found it."""
        found = books["directories"][action.path]["found"]
        assert action.old is not None  # a restore is planned from what is on disk
        self.journal.before_metadata_change(action.path, action.old, "dir")
        fsops.set_metadata(self.root, action.path, found["mode"], found["uid"], found["gid"])
        books["directories"].pop(action.path, None)

    def rmdir(self, action: Action, books: dict) -> None:
        fsops.remove_empty_directory(self.root, action.path)  # only when empty: never loses files
        self.journal.directory_removed(action.path)
        books["directories"].pop(action.path, None)

    # -- helpers -------------------------------------------------------------------------------
    def ids(self, part: str, user: str, group: str) -> tuple[int, int]:
        found = accounts.find_user(self.root, user)
        gid = accounts.find_group(self.root, group)
        if found is None or gid is None:
            raise ConfigError(part, "owner", f"no such user or group {user}:{group}")
        return found.uid, gid

    def backup(self, action: Action) -> None:
        old = action.old
        assert old is not None  # only what is on disk (a regular file) is backed up
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
        target = os.path.join(
            self.settings.state_directory, "backups", stamp, action.path.lstrip("/")
        )
        # journaled as a new file: a run rolled back keeps no backup of what it put back
        self.journal.before_write(target)
        self.journal.before_file_change(target, None)
        fsops.write_file(self.root, target, old.content, old.mode, old.uid, old.gid)
        action.note = (action.note + "; " if action.note else "") + f"backup in {target}"

    def record_unchanged(self, plan: Plan, live: set[str]) -> None:
        """Adopted files (identical content already there) and parts that are now empty (a
        part that only records facts is empty once it is no longer configured)."""
        manifest = self.manifest
        for part, paths in plan.adopted.items():
            spec = self.declared[part]
            books = manifest.parts.setdefault(
                part, {"files": {}, "directories": {}, "recipe": spec.recipe}
            )
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
            if (
                not books.get("files")
                and not books.get("directories")
                and not books.get("links")
                and (not books.get("facts") or part not in live)
            ):
                del manifest.parts[part]


def file_books(item: FileSpec) -> dict:
    """A file's entry in the manifest: what was written, and whether it may ever be shown."""
    return {
        "sha256": item.sha256,
        "mode": item.mode,
        "owner": item.owner,
        "group": item.group,
        "secret": item.secret,
    }


def not_root(error: BaseException) -> str:
    """What to do about a write refused to a user who is not root (files get their owner and
    mode, which needs root): said after the error, or ""."""
    if isinstance(error, PermissionError) and os.geteuid() != 0:
        return " (not root: run it as root)"
    return ""


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror if not error.filename else f"{error.strerror}: {error.filename}"
    return str(error)
