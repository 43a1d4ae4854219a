"""Desired state vs disk: the list of actions a run would take, with the checks that guard them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from . import accounts, fsops
from .errors import ConfigError
from .manifest import Manifest
from .model import AccountSpec, DirSpec, FileSpec, LinkSpec, PartSpec, Reload, sha256
from .settings import Settings


@dataclass
class Action:
    part: str
    verb: str  # create, update, chmod, remove, keep, mkdir, rmdir, account, link, relink, unlink
    path: str
    old: fsops.FileState | None = None
    file: FileSpec | None = None
    directory: DirSpec | None = None
    account: AccountSpec | None = None
    link: LinkSpec | None = None
    facts: dict[str, str] | None = None
    fact_reloads: list[Reload] = field(default_factory=list)
    backup: bool = False
    note: str = ""
    #: the file was recorded as secret (a removal or an update must not show what it held)
    was_secret: bool = False

    @property
    def secret(self) -> bool:
        return self.was_secret or (self.file is not None and self.file.secret)

    @property
    def reloads(self) -> list[Reload]:
        if self.file is not None:
            return self.file.reloads
        if self.directory is not None:
            return self.directory.reloads
        if self.link is not None:
            return self.link.reloads
        return self.fact_reloads


# verbs that change the disk (and so trigger the reloads their spec asks for)
CHANGES = (
    "create",
    "update",
    "chmod",
    "remove",
    "mkdir",
    "link",
    "relink",
    "unlink",
    "facts",
    "restore",
)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    unchanged: dict[str, list[str]] = field(default_factory=dict)  # part -> paths
    parts: dict[str, str] = field(default_factory=dict)  # part -> created/updated/unchanged/removed
    removal_reloads: list[Reload] = field(default_factory=list)
    adopted: dict[str, list[str]] = field(default_factory=dict)
    #: files edited by hand that this run leaves as they are (warnings, not changes)
    drift: list[Action] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    #: actions by part, for ``for_part`` (asked once per part: a scan each time was O(N^2))
    _by_part: dict[str, list[Action]] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=0, repr=False, compare=False)

    def for_part(self, part: str) -> list[Action]:
        if self._indexed != len(self.actions):  # actions are only ever appended
            self._by_part = {}
            for action in self.actions:
                self._by_part.setdefault(action.part, []).append(action)
            self._indexed = len(self.actions)
        return list(self._by_part.get(part, ()))

    @property
    def reloads(self) -> list[Reload]:
        result = []
        for action in self.actions:
            if action.verb in CHANGES:
                result += action.reloads
        return result + self.removal_reloads


def _wants_as_written(books: dict, item: FileSpec) -> bool:
    """This run wants exactly what system-recipes last wrote (content, mode and owner)."""
    return (books["sha256"], books.get("mode"), books.get("owner"), books.get("group")) == (
        item.sha256,
        item.mode,
        item.owner,
        item.group,
    )


def was_secret(books: dict | None, state: fsops.FileState | None) -> bool:
    """Whether a file's earlier content must stay hidden: the manifest records it; a manifest
    written before it did is read conservatively (a file others may not read was secret)."""
    if books is None:
        return False
    if "secret" in books:
        return bool(books["secret"])
    return state is not None and state.kind == "file" and state.mode & 0o007 == 0


class Planner:
    """Compares what parts want with the disk and the manifest; raises on anything unsafe."""

    def __init__(self, settings: Settings, manifest: Manifest):
        self.settings = settings
        self.manifest = manifest
        self.root = settings.root
        self.planned_users: set[str] = set()
        self.planned_groups: set[str] = set()

    def plan(self, specs: Mapping[str, PartSpec | None], removed: set[str]) -> Plan:
        """``specs``: parts to converge (None: uninstall); ``removed``: orphans to remove too."""
        result = Plan()
        wanted_paths: dict[str, str] = {}
        live = {name: spec for name, spec in specs.items() if spec is not None}
        for name, spec in live.items():
            paths: list[FileSpec | DirSpec | LinkSpec] = [
                *spec.files,
                *spec.directories,
                *spec.links,
            ]
            for item in paths:
                other = wanted_paths.setdefault(item.path, name)
                if other != name:
                    raise ConfigError(
                        name,
                        "path",
                        f"{item.path} is also written by [{other}]",
                        "each file to belong to one part",
                    )
        for spec in live.values():
            self._plan_accounts(spec, result)
        for spec in live.values():
            for option, user, group in spec.needs_accounts:
                self.check_owner(spec.name, option, user, group or "root")
        for spec in live.values():
            for directory in spec.directories:
                self._plan_directory(spec, directory, result)
        for spec in live.values():
            for item in spec.files:
                self._plan_file(spec, item, wanted_paths, result)
            for link in spec.links:
                self._plan_link(spec, link, wanted_paths, result)
            self._plan_facts(spec, result)
        leaving = {n for n, s in specs.items() if s is None} | removed
        for name in list(self.manifest.parts):
            self._plan_removals(name, live.get(name), name in leaving, wanted_paths, result)
        drifted = {a.part for a in result.drift}
        acted = {a.part for a in result.actions}
        for name in live:
            if name not in acted:
                result.parts[name] = "drifted" if name in drifted else "unchanged"
            elif name in self.manifest.parts:
                result.parts[name] = "updated"
            else:
                result.parts[name] = "created"
        for name in sorted(leaving):
            if name in self.manifest.parts and name not in live:
                result.parts[name] = "removed"
        return result

    # -- owners ----------------------------------------------------------------------------
    def check_owner(self, part: str, option: str, user: str, group: str) -> None:
        if user not in self.planned_users and accounts.find_user(self.root, user) is None:
            raise ConfigError(
                part,
                option,
                f"no user {user!r} on this host",
                "an existing user or one a deployment part creates",
            )
        if group not in self.planned_groups and accounts.find_group(self.root, group) is None:
            raise ConfigError(
                part,
                "group" if option == "owner" else option,
                f"no group {group!r} on this host",
                "an existing group or one a deployment part creates",
            )

    def ids(self, user: str, group: str) -> tuple[int | None, int | None]:
        found = accounts.find_user(self.root, user)
        gid = accounts.find_group(self.root, group)
        return (found.uid if found else None), gid

    # -- accounts --------------------------------------------------------------------------
    def _plan_accounts(self, spec: PartSpec, result: Plan) -> None:
        for account in spec.accounts:
            if (
                accounts.find_group(self.root, account.group) is None
                and account.group not in self.planned_groups
            ):
                result.actions.append(
                    Action(
                        spec.name,
                        "account",
                        f"group {account.group}",
                        account=AccountSpec(None, account.group, "", ""),
                    )
                )
            self.planned_groups.add(account.group)
            if (
                account.user
                and accounts.find_user(self.root, account.user) is None
                and account.user not in self.planned_users
            ):
                result.actions.append(
                    Action(spec.name, "account", f"user {account.user}", account=account)
                )
            if account.user:
                self.planned_users.add(account.user)

    # -- directories -----------------------------------------------------------------------
    def _plan_directory(self, spec: PartSpec, item: DirSpec, result: Plan) -> None:
        self.check_owner(spec.name, "owner", item.owner, item.group)
        state = self._inspect(spec.name, item.path, read=False)
        if state is None:
            result.actions.append(Action(spec.name, "mkdir", item.path, directory=item))
            return
        if state.kind == "symlink":
            raise ConfigError(
                spec.name,
                "path",
                f"{item.path} is a symlink; refusing to follow it",
                "a real directory or nothing at that path",
            )
        if state.kind != "dir":
            raise ConfigError(
                spec.name,
                "path",
                f"{item.path} exists and is not a directory",
                "a directory or nothing at that path",
            )
        uid, gid = self.ids(item.owner, item.group)
        if (state.mode, state.uid, state.gid) != (item.mode, uid, gid):
            result.actions.append(Action(spec.name, "chmod", item.path, old=state, directory=item))
        else:
            result.unchanged.setdefault(spec.name, []).append(item.path)

    # -- files -----------------------------------------------------------------------------
    def _handed_over(self, part: str, path: str, wanted: dict, books_of) -> dict | None:
        """The books of ``path`` when another part of this instance owned it and gives it up in
        this run; a path another part keeps, or another instance owns, is a conflict."""
        owner = self.manifest.owner_of(path)
        if owner is None or owner == (self.manifest.instance, part):
            return None
        instance, other = owner
        leaving = other not in wanted.values() or wanted.get(path) == part
        if instance != self.manifest.instance or not leaving:
            elsewhere = f" of instance {instance}" if instance != self.manifest.instance else ""
            raise ConfigError(
                part,
                "path",
                f"{path} belongs to [{other}]{elsewhere}",
                "each file to belong to one part",
            )
        return books_of(other).get(path)

    def _plan_file(self, spec: PartSpec, item: FileSpec, wanted: dict, result: Plan) -> None:
        self.check_owner(spec.name, "owner", item.owner, item.group)
        state = self._inspect(spec.name, item.path)
        books = self.manifest.files(spec.name).get(item.path)
        if state is None:
            result.actions.append(Action(spec.name, "create", item.path, file=item))
            return
        if state.kind != "file":
            kind = {"dir": "a directory", "symlink": "a symlink"}.get(state.kind, "not a file")
            raise ConfigError(
                spec.name,
                "path",
                f"{item.path} is {kind}; refusing to replace it",
                "a regular file or nothing at that path",
            )
        uid, gid = self.ids(item.owner, item.group)
        same_content = state.data == item.content
        same_meta = (state.mode, state.uid, state.gid) == (item.mode, uid, gid)
        if books is None:
            books = self._handed_over(spec.name, item.path, wanted, self.manifest.files)
        if same_content and same_meta:
            result.unchanged.setdefault(spec.name, []).append(item.path)
            if books is None:
                result.adopted.setdefault(spec.name, []).append(item.path)
            return
        secret = was_secret(books, state)
        if books is None or books["sha256"] != sha256(state.content):
            if same_content:
                pass  # only the owner or mode differs: put it back (below)
            elif spec.force:
                result.actions.append(
                    Action(
                        spec.name,
                        "update",
                        item.path,
                        old=state,
                        file=item,
                        backup=True,
                        note="forced over local changes",
                        was_secret=secret,
                    )
                )
                return
            elif books is not None and _wants_as_written(books, item):
                # drift: edited by hand, and this run would leave the file as it is
                result.drift.append(
                    Action(
                        spec.name,
                        "drift",
                        item.path,
                        old=state,
                        file=item,
                        was_secret=secret,
                        note="changed by hand since system-recipes wrote it; left as it is "
                        "(force = true replaces it)",
                    )
                )
                result.unchanged.setdefault(spec.name, []).append(item.path)
                return
            else:
                why = (
                    "was not written by system-recipes"
                    if books is None
                    else "was changed since system-recipes wrote it"
                )
                raise ConfigError(
                    spec.name,
                    "path",
                    f"{item.path} {why}; refusing to overwrite it",
                    "force = true to replace it (a backup is kept)",
                )
        verb = "update" if not same_content else "chmod"
        note = ""
        if state.mode != item.mode:
            note = f"mode {state.mode:04o} -> {item.mode:04o}"
        if (state.uid, state.gid) != (uid, gid):
            note = (note + ", " if note else "") + f"owner {item.owner}:{item.group}"
        result.actions.append(
            Action(spec.name, verb, item.path, old=state, file=item, note=note, was_secret=secret)
        )

    # -- facts -----------------------------------------------------------------------------
    def _plan_facts(self, spec: PartSpec, result: Plan) -> None:
        recorded = self.manifest.parts.get(spec.name, {}).get("facts")
        if not spec.facts or spec.facts == recorded:
            return
        now = ", ".join(f"{k} {v}" for k, v in sorted(spec.facts.items()))
        if recorded is None:
            result.actions.append(Action(spec.name, "facts", now, facts=dict(spec.facts)))
            return
        was = ", ".join(f"{k} {v}" for k, v in sorted(recorded.items()))
        result.actions.append(
            Action(
                spec.name,
                "facts",
                now,
                facts=dict(spec.facts),
                fact_reloads=list(spec.fact_reloads),
                note=f"was {was}",
            )
        )

    # -- symlinks --------------------------------------------------------------------------
    def _plan_link(self, spec: PartSpec, item: LinkSpec, wanted: dict, result: Plan) -> None:
        state = self._inspect(spec.name, item.path)
        if state is None:
            result.actions.append(Action(spec.name, "link", item.path, link=item))
            return
        if state.kind not in ("symlink", "file"):
            kind = {"dir": "a directory"}.get(state.kind, "not a file")
            raise ConfigError(
                spec.name,
                "path",
                f"{item.path} is {kind}; refusing to replace it with a symlink",
                "a symlink or nothing at that path",
            )
        books = self.manifest.links(spec.name).get(item.path)
        if books is None:
            books = self._handed_over(spec.name, item.path, wanted, self.manifest.links)
        if state.kind == "symlink" and state.target == item.target:
            result.unchanged.setdefault(spec.name, []).append(item.path)
            if books is None:
                result.adopted.setdefault(spec.name, []).append(item.path)  # already right
            return
        ours = state.kind == "symlink" and books is not None and books["target"] == state.target
        if not ours:
            if not spec.force:
                why = (
                    "is not a symlink"
                    if state.kind == "file"
                    else "was not made by system-recipes"
                    if books is None
                    else "was changed since system-recipes made it"
                )
                raise ConfigError(
                    spec.name,
                    "path",
                    f"{item.path} {why}; refusing to replace it",
                    "force = true to replace it",
                )
            result.actions.append(
                Action(
                    spec.name,
                    "relink",
                    item.path,
                    old=state,
                    link=item,
                    backup=state.kind == "file",
                    note="forced over "
                    + ("a file" if state.kind == "file" else f"a link to {state.target}"),
                )
            )
            return
        result.actions.append(
            Action(
                spec.name, "relink", item.path, old=state, link=item, note=f"was -> {state.target}"
            )
        )

    # -- removals --------------------------------------------------------------------------
    def _plan_removals(
        self, name: str, spec: PartSpec | None, leaving: bool, wanted: dict, result: Plan
    ) -> None:
        if spec is None and not leaving:
            return
        keep_files = {f.path for f in spec.files} if spec else set()
        keep_dirs = {d.path for d in spec.directories} if spec else set()
        keep_links = {link.path for link in spec.links} if spec else set()
        force = spec.force if spec else False
        for path, books in self.manifest.files(name).items():
            if path in keep_files or path in wanted:
                continue
            state = self._inspect(name, path)
            secret = was_secret(books, state)
            if state is None:
                result.actions.append(Action(name, "forget", path, note="already gone"))
            elif state.kind != "file" or sha256(state.content) != books["sha256"]:
                if force and state.kind == "file":
                    result.actions.append(
                        Action(name, "remove", path, old=state, backup=True, was_secret=secret)
                    )
                else:
                    result.actions.append(
                        Action(
                            name,
                            "keep",
                            path,
                            old=state,
                            note="changed since written; left in place",
                            was_secret=secret,
                        )
                    )
            else:
                result.actions.append(Action(name, "remove", path, old=state, was_secret=secret))
        for path, books in self.manifest.links(name).items():
            if path in keep_links or path in wanted:
                continue
            state = self._inspect(name, path, read=False)
            if state is None:
                result.actions.append(Action(name, "forget", path, note="already gone"))
            elif state.kind == "symlink" and state.target == books["target"]:
                result.actions.append(Action(name, "unlink", path, old=state))
            else:
                result.actions.append(
                    Action(name, "keep", path, old=state, note="changed since made; left in place")
                )
        for path, books in sorted(self.manifest.directories(name).items(), reverse=True):
            if path in keep_dirs or path in wanted:
                continue
            if books.get("created"):
                result.actions.append(Action(name, "rmdir", path))
            elif books.get("found"):
                result.actions.append(self._restore_directory(name, path, books))
            else:
                result.actions.append(Action(name, "forget", path, note="not ours"))
        if spec is None and self.manifest.parts.get(name, {}).get("facts"):
            result.actions.append(Action(name, "forget", "recorded facts"))
        if spec is None:
            for item in self.manifest.parts.get(name, {}).get("removal_reloads", []):
                result.removal_reloads.append(Reload(*item))

    def _restore_directory(self, part: str, path: str, books: dict) -> Action:
        """A directory the part did not create but changed: back to the mode and owner it had,
        unless someone changed it since (then it is left as it is)."""
        state = self._inspect(part, path, read=False)
        found = books["found"]
        if state is None or state.kind != "dir":
            return Action(part, "forget", path, note="already gone")
        uid, gid = self.ids(books.get("owner", "root"), books.get("group", "root"))
        if (state.mode, state.uid, state.gid) != (books.get("mode"), uid, gid):
            return Action(part, "forget", path, note="changed since; left as it is")
        if (state.mode, state.uid, state.gid) == (found["mode"], found["uid"], found["gid"]):
            return Action(part, "forget", path, note="not ours")
        return Action(
            part,
            "restore",
            path,
            old=state,
            note=f"mode {found['mode']:04o}, owner {found['uid']}:{found['gid']}, as it was found",
        )

    def _inspect(self, part: str, path: str, read: bool = True) -> fsops.FileState | None:
        try:
            return fsops.inspect(self.root, path, read=read)
        except fsops.UnsafePath as error:
            raise ConfigError(
                part, "path", error.strerror or str(error), "a path without symlinks"
            ) from None
