"""The removals a plan holds: what the manifest records for a part that this run no longer
wants (the part left, or it stopped writing a path) is removed if it is as system-recipes left
it and kept otherwise; a directory the part only changed goes back to the mode and owner it was
found with.

The other half of the comparison :mod:`.planner` makes (what the parts want written): the
:class:`Removals` methods that :class:`~.planner.Planner` inherits.
"""

from __future__ import annotations

from system_recipes.core.declare.specs import PartSpec, Reload, sha256
from system_recipes.core.disk import fsops
from system_recipes.core.disk.manifest import Manifest
from system_recipes.core.plan.actions import Action, Plan, was_secret


class Removals:
    """The removals half of :class:`~.planner.Planner`, which inherits it and provides the
    manifest, ``inspect`` and ``ids`` it reads (declared here without a body)."""

    manifest: Manifest

    def inspect(self, part: str, path: str, read: bool = True) -> fsops.FileState | None:
        raise NotImplementedError

    def ids(self, user: str, group: str) -> tuple[int | None, int | None]:
        raise NotImplementedError

    def plan_removals(
        self, name: str, spec: PartSpec | None, leaving: bool, wanted: dict, result: Plan
    ) -> None:
        if spec is None and not leaving:
            return
        keep_files = {f.path for f in spec.files} if spec else set()
        keep_dirs = {d.path for d in spec.directories} if spec else set()
        keep_links = {link.path for link in spec.links} if spec else set()
        force = spec.force if spec else False
        for path, books in self.manifest.files(name).items():
            if path not in keep_files and path not in wanted:
                result.actions.append(self._file_removal(name, path, books, force))
        for path, books in self.manifest.links(name).items():
            if path not in keep_links and path not in wanted:
                result.actions.append(self._link_removal(name, path, books))
        for path, books in sorted(self.manifest.directories(name).items(), reverse=True):
            if path not in keep_dirs and path not in wanted:
                result.actions.append(self._directory_removal(name, path, books))
        if spec is None:
            self._plan_part_gone(name, result)

    def _file_removal(self, name: str, path: str, books: dict, force: bool) -> Action:
        """A file the part wrote and no longer wants: removed if as written (or forced, with a
        backup), kept if changed since."""
        state = self.inspect(name, path)
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

    def _link_removal(self, name: str, path: str, books: dict) -> Action:
        """A symlink the part made and no longer wants: unlinked if it still points where made."""
        state = self.inspect(name, path, read=False)
        if state is None:
            return Action(name, "forget", path, note="already gone")
        if state.kind == "symlink" and state.target == books["target"]:
            return Action(name, "unlink", path, old=state)
        return Action(name, "keep", path, old=state, note="changed since made; left in place")

    def _directory_removal(self, name: str, path: str, books: dict) -> Action:
        """A directory the part no longer wants: removed if it created it, restored if it only
        changed it, forgotten otherwise."""
        if books.get("created"):
            return Action(name, "rmdir", path)
        if books.get("found"):
            return self.restore_directory(name, path, books)
        return Action(name, "forget", path, note="not ours")

    def _plan_part_gone(self, name: str, result: Plan) -> None:
        """A part that leaves: its recorded facts are forgotten, its removal reloads run."""
        books = self.manifest.parts.get(name, {})
        if books.get("facts"):
            result.actions.append(Action(name, "forget", "recorded facts"))
        for item in books.get("removal_reloads", []):
            result.removal_reloads.append(Reload(*item))

    def restore_directory(self, part: str, path: str, books: dict) -> Action:
        """A directory the part did not create but changed: back to the mode and owner it had,
        unless someone changed it since (then it is left as it is)."""
        state = self.inspect(part, path, read=False)
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
