"""Desired state vs disk: the Planner, which compares what the parts want (accounts,
directories, files, symlinks, facts) with the disk and the manifest and raises on anything
unsafe. The actions and the Plan it returns are in :mod:`.actions`; the removals of what the
parts no longer want are in :mod:`.removals` (the Removals half of the Planner, inherited)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.settings import Settings
from system_recipes.core.declare.specs import (
    AccountSpec,
    DirSpec,
    FileSpec,
    LinkSpec,
    PartSpec,
    sha256,
)
from system_recipes.core.disk import accounts, fsops
from system_recipes.core.disk.manifest import Manifest
from system_recipes.core.plan.actions import Action, Plan, was_secret
from system_recipes.core.plan.removals import Removals


def _wants_as_written(books: dict, item: FileSpec) -> bool:
    """This run wants exactly what system-recipes last wrote (content, mode and owner)."""
    return (books["sha256"], books.get("mode"), books.get("owner"), books.get("group")) == (
        item.sha256,
        item.mode,
        item.owner,
        item.group,
    )


def _wanted_paths(live: Mapping[str, PartSpec]) -> dict[str, str]:
    """Every path a live part writes, with the part writing it; a path two parts write is a
    mistake."""
    wanted_paths: dict[str, str] = {}
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
    return wanted_paths


class Planner(Removals):
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
        live = {name: spec for name, spec in specs.items() if spec is not None}
        wanted_paths = _wanted_paths(live)
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
            self.plan_removals(name, live.get(name), name in leaving, wanted_paths, result)
        self._name_outcomes(live, leaving, result)
        return result

    def _name_outcomes(self, live: Mapping[str, PartSpec], leaving: set[str], result: Plan) -> None:
        """What the plan does to each part: created, updated, unchanged, drifted or removed."""
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
        state = self.inspect(spec.name, item.path, read=False)
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
    def _handed_over(
        self, part: str, path: str, wanted: dict, books_of: Callable[[str], dict[str, dict]]
    ) -> dict | None:
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
        state = self.inspect(spec.name, item.path)
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
        state = self.inspect(spec.name, item.path)
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

    def inspect(self, part: str, path: str, read: bool = True) -> fsops.FileState | None:
        try:
            return fsops.inspect(self.root, path, read=read)
        except fsops.UnsafePath as error:
            raise ConfigError(
                part, "path", error.strerror or str(error), "a path without symlinks"
            ) from None
