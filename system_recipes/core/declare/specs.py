"""What a part wants on disk (desired state), independent of what is there."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass, field


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: buildout attribute set by meta-recipe expansion: a GeneratedFrom (errors name what the
#: operator wrote)
GENERATED_FROM = "_system_recipes_generated_from"


@dataclass(slots=True)
class Expansion:
    """What one meta section adds (meta/expand.py): sections in order, and options written back
    into it. Here, below the meta floor, because the run reports by it."""

    sections: dict[str, dict[str, str]] = field(default_factory=dict)
    exposed: dict[str, str] = field(default_factory=dict)
    #: generated option -> the meta option it was taken from (for the source annotation)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)
    #: generated option -> the meta option its value is made from (errors name that one)
    blame: dict[tuple[str, str], str] = field(default_factory=dict)
    #: what the section exports to whoever compiles configurations from it (level 4): facts
    #: by name, such as ``nrpe-checks``, the names of the NRPE checks it defines
    facts: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Reload:
    """A daemon action run once per run, after commit, when a file that asks for it changed."""

    kind: str  # a key of reload.HANDLERS: "supervisor", "systemd", "service", "command"
    target: str

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


@dataclass(frozen=True)
class Check:
    """A validator to run on a file's new content, with what that validator must know besides
    the content: ``context`` is the validator's own frozen dataclass (declared beside it, such
    as ``daemons.haproxy.HaproxyContext``), built by name by the recipe, or None for a
    validator that needs nothing else. It is part of the validation cache's key, so it is
    hashable and compared by value."""

    validator: str
    context: Hashable | None = None


@dataclass(slots=True)
class FileSpec:
    path: str  # as seen on the host; written below the root
    content: bytes
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    secret: bool = False
    checks: list[Check] = field(default_factory=list)
    reloads: list[Reload] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return sha256(self.content)


@dataclass(slots=True)
class DirSpec:
    path: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o755
    reloads: list[Reload] = field(default_factory=list)


@dataclass(slots=True)
class LinkSpec:
    """A symlink at ``path`` pointing to ``target`` (written verbatim: relative or absolute).

    Only the link itself is managed; what it points to is another spec's business (or none)."""

    path: str
    target: str
    reloads: list[Reload] = field(default_factory=list)


@dataclass(slots=True)
class AccountSpec:
    """A system account to create when missing; accounts are never removed."""

    user: str | None
    group: str
    home: str
    shell: str


@dataclass(slots=True)
class PartSpec:
    """Everything one buildout part wants, built by its recipe in ``__init__``."""

    name: str
    recipe: str
    files: list[FileSpec] = field(default_factory=list)
    directories: list[DirSpec] = field(default_factory=list)
    links: list[LinkSpec] = field(default_factory=list)
    accounts: list[AccountSpec] = field(default_factory=list)
    force: bool = False
    # accounts that must exist (or be created by this run) though no file is owned by them:
    # (option, user, group-or-None), e.g. the user column of a cron entry
    needs_accounts: list[tuple[str, str, str | None]] = field(default_factory=list)
    # reloads when the part is removed (a dropped supervisor program must be stopped)
    removal_reloads: list[Reload] = field(default_factory=list)
    # facts the books keep (a package's version): a change is an action of its own, and runs
    # ``fact_reloads`` (restart what runs the package); the first record runs none
    facts: dict[str, str] = field(default_factory=dict)
    fact_reloads: list[Reload] = field(default_factory=list)


_NONE: frozenset[str] = frozenset()  # one for the sections a profile does not refine


class GeneratedFrom:
    """(generated section, option) -> (meta section, meta option or None) for every generated
    value the profile did not refine, and (generated section, None) -> (meta section, None).

    Kept per section and answered from the expansion, not as a table of every generated option:
    that table was 6 MB at 1000 service sections."""

    def __init__(self) -> None:
        self._sections: dict[str, tuple[str, Expansion, frozenset[str]]] = {}

    def add(self, section: str, meta: str, expansion: Expansion, refined: set[str]) -> None:
        """``section`` generated by ``meta``; ``refined``: the options the profile set itself
        (a second expansion, after a load, keeps the first one's)."""
        known = self._sections.get(section)
        kept = known[2] if known is not None else (frozenset(refined) if refined else _NONE)
        self._sections[section] = (meta, expansion, kept)

    def get(
        self, key: tuple[str, str | None], default: tuple[str, str | None] | None = None
    ) -> tuple[str, str | None] | None:
        section, option = key
        entry = self._sections.get(section)
        if entry is None:
            return default
        meta, expansion, refined = entry
        if option is None:
            return (meta, None)
        if option in refined or option not in expansion.sections.get(section, {}):
            return default
        return (meta, expansion.blame.get((section, option)))

    def __contains__(self, key: tuple[str, str | None]) -> bool:
        return self.get(key) is not None

    def __getitem__(self, key: tuple[str, str | None]) -> tuple[str, str | None]:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found
