"""The removals a plan holds: what the manifest records for a part that this run no longer
wants (the part left, or it stopped writing a path) is removed if it is as system-recipes left
it and kept otherwise; a directory the part only changed goes back to the mode and owner it was
found with.

Separate from :mod:`.plan` (the Planner and what the parts want written) as the other half of
the comparison: functions of the planner they are given (``planner.manifest``,
``planner.inspect``, ``planner.ids``).
"""

from __future__ import annotations

from typing import Protocol

from system_recipes.core.declare.specs import PartSpec, Reload, sha256
from system_recipes.core.disk import fsops
from system_recipes.core.disk.manifest import Manifest
from system_recipes.core.plan.actions import Action, Plan, was_secret


class Planner(Protocol):
    """What a removal needs of plan.Planner, declared here: plan imports this module, and an
    import back (even for types only) would close a circle."""

    manifest: Manifest

    def inspect(self, part: str, path: str, read: bool = True) -> fsops.FileState | None: ...

    def ids(self, user: str, group: str) -> tuple[int | None, int | None]: ...


def plan_removals(
    planner: Planner, name: str, spec: PartSpec | None, leaving: bool, wanted: dict, result: Plan
) -> None:
    if spec is None and not leaving:
        return
    keep_files = {f.path for f in spec.files} if spec else set()
    keep_dirs = {d.path for d in spec.directories} if spec else set()
    keep_links = {link.path for link in spec.links} if spec else set()
    force = spec.force if spec else False
    for path, books in planner.manifest.files(name).items():
        if path not in keep_files and path not in wanted:
            result.actions.append(_file_removal(planner, name, path, books, force))
    for path, books in planner.manifest.links(name).items():
        if path not in keep_links and path not in wanted:
            result.actions.append(_link_removal(planner, name, path, books))
    for path, books in sorted(planner.manifest.directories(name).items(), reverse=True):
        if path not in keep_dirs and path not in wanted:
            result.actions.append(_directory_removal(planner, name, path, books))
    if spec is None:
        _plan_part_gone(planner, name, result)


def _file_removal(planner: Planner, name: str, path: str, books: dict, force: bool) -> Action:
    """A file the part wrote and no longer wants: removed if as written (or forced, with a
    backup), kept if changed since."""
    state = planner.inspect(name, path)
    secret = was_secret(books, state)
    if state is None:
        return Action(name, "forget", path, note="already gone")
    if state.kind == "file" and sha256(state.content) == books["sha256"]:
        return Action(name, "remove", path, old=state, was_secret=secret)
    if force and state.kind == "file":
        return Action(name, "remove", path, old=state, backup=True, was_secret=secret)
    return Action(
        name,
        "keep",
        path,
        old=state,
        note="changed since written; left in place",
        was_secret=secret,
    )


def _link_removal(planner: Planner, name: str, path: str, books: dict) -> Action:
    """A symlink the part made and no longer wants: unlinked if it still points where made."""
    state = planner.inspect(name, path, read=False)
    if state is None:
        return Action(name, "forget", path, note="already gone")
    if state.kind == "symlink" and state.target == books["target"]:
        return Action(name, "unlink", path, old=state)
    return Action(name, "keep", path, old=state, note="changed since made; left in place")


def _directory_removal(planner: Planner, name: str, path: str, books: dict) -> Action:
    """A directory the part no longer wants: removed if it created it, restored if it only
    changed it, forgotten otherwise."""
    if books.get("created"):
        return Action(name, "rmdir", path)
    if books.get("found"):
        return restore_directory(planner, name, path, books)
    return Action(name, "forget", path, note="not ours")


def _plan_part_gone(planner: Planner, name: str, result: Plan) -> None:
    """A part that leaves: its recorded facts are forgotten, its removal reloads run."""
    books = planner.manifest.parts.get(name, {})
    if books.get("facts"):
        result.actions.append(Action(name, "forget", "recorded facts"))
    for item in books.get("removal_reloads", []):
        result.removal_reloads.append(Reload(*item))


def restore_directory(planner: Planner, part: str, path: str, books: dict) -> Action:
    """A directory the part did not create but changed: back to the mode and owner it had,
    unless someone changed it since (then it is left as it is)."""
    state = planner.inspect(part, path, read=False)
    found = books["found"]
    if state is None or state.kind != "dir":
        return Action(part, "forget", path, note="already gone")
    uid, gid = planner.ids(books.get("owner", "root"), books.get("group", "root"))
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
