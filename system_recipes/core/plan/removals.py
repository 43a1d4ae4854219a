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
        if path in keep_files or path in wanted:
            continue
        state = planner.inspect(name, path)
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
    for path, books in planner.manifest.links(name).items():
        if path in keep_links or path in wanted:
            continue
        state = planner.inspect(name, path, read=False)
        if state is None:
            result.actions.append(Action(name, "forget", path, note="already gone"))
        elif state.kind == "symlink" and state.target == books["target"]:
            result.actions.append(Action(name, "unlink", path, old=state))
        else:
            result.actions.append(
                Action(name, "keep", path, old=state, note="changed since made; left in place")
            )
    for path, books in sorted(planner.manifest.directories(name).items(), reverse=True):
        if path in keep_dirs or path in wanted:
            continue
        if books.get("created"):
            result.actions.append(Action(name, "rmdir", path))
        elif books.get("found"):
            result.actions.append(restore_directory(planner, name, path, books))
        else:
            result.actions.append(Action(name, "forget", path, note="not ours"))
    if spec is None and planner.manifest.parts.get(name, {}).get("facts"):
        result.actions.append(Action(name, "forget", "recorded facts"))
    if spec is None:
        for item in planner.manifest.parts.get(name, {}).get("removal_reloads", []):
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
