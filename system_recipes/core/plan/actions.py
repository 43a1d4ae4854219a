"""The plan's vocabulary: an Action (one change, or one path left as it is, with why) and the
Plan (the actions of a run, by part, and the reloads they ask for), and whether a file's earlier
content was secret.

Separate from :mod:`.plan` (the Planner, which compares the parts with the disk and the manifest)
because apply and report read plans without planning: they import these types, not the Planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from system_recipes.core.declare.specs import AccountSpec, DirSpec, FileSpec, LinkSpec, Reload
from system_recipes.core.disk import fsops


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


def was_secret(books: dict | None, state: fsops.FileState | None) -> bool:
    """Whether a file's earlier content must stay hidden: the manifest records it; a manifest
    written before it did is read conservatively (a file others may not read was secret)."""
    if books is None:
        return False
    if "secret" in books:
        return bool(books["secret"])
    return state is not None and state.kind == "file" and state.mode & 0o007 == 0
