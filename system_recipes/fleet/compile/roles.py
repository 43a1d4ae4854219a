"""What the compiler learns from the roles: read with zc.buildout's own configuration loader.

A role is never parsed by hand here. Its ``parts`` are what buildout reads for it (with the
files it extends), and what a host's roles generate -- the sections a meta-recipe adds and the
NRPE checks it defines -- comes from a *draft* of the host's configuration (its roles and the
model's refinements, extending the roles as they are in this checkout) loaded by buildout and
expanded by the real meta-recipe expansion (:func:`system_recipes.meta.expand.expand`, on the
floor below fleet).

The check names are the facts an expansion exports (``Expansion.facts["nrpe-checks"]``, set
by ``system_recipes:service``); a level-1 ``system_recipes:nrpe`` part of a role names its
checks itself, as the first word of each line of ``checks``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import zc.buildout

from system_recipes.core.buildout.api import raw_section, raw_sections
from system_recipes.core.buildout.loading import loaded
from system_recipes.core.declare.specs import Expansion
from system_recipes.fleet.model.tables import ModelError
from system_recipes.meta.expand import expand

if TYPE_CHECKING:  # zc.buildout has no annotations: mypy takes a Buildout for what it is
    from zc.buildout.buildout import Buildout


@dataclass
class Draft:
    """A host's roles as buildout reads them, expanded."""

    #: every section after expansion: name -> raw options
    sections: dict[str, dict[str, str]]
    #: the meta sections and their expansions
    expansions: dict[str, Expansion]
    #: part -> the NRPE check names it defines (meta sections: their exported facts)
    checks: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RoleInfo:
    """One role as buildout reads it alone."""

    #: its ``parts``, before expansion
    parts: list[str]
    #: its meta sections (``system_recipes:service``), in parts order
    metas: list[str]
    #: every section after expansion: name -> raw options
    sections: dict[str, dict[str, str]]


@contextlib.contextmanager
def read_by_buildout(path: str) -> Iterator:
    """``core.loading.loaded``, and the current directory back afterwards: buildout changes
    into the directory of the file it reads, and the model's paths are relative."""
    here = os.getcwd()
    try:
        with loaded(path) as buildout:
            yield buildout
    finally:
        os.chdir(here)


def role_info(profiles: str, role: str) -> RoleInfo:
    """``role`` (relative to ``profiles``) read by buildout, and expanded."""
    path = os.path.join(profiles, role)
    if not os.path.isfile(path):
        raise zc.buildout.UserError(
            f"{path}: no such role (roles are read from {profiles}; "
            "expected the profiles that are installed on the hosts)"
        )
    with read_by_buildout(path) as buildout:
        parts = buildout["buildout"].get("parts", "").split()
        expansions = expand(buildout)
        sections = {name: dict(options) for name, options in raw_sections(buildout).items()}
    return RoleInfo(parts, [part for part in parts if part in expansions], sections)


def load_draft(text: str, where: str) -> Draft:
    """Load ``text`` (a host configuration whose extends are local paths) with buildout and
    expand it; ``where`` names the host in errors."""
    with tempfile.TemporaryDirectory(prefix="system-recipes-fleet-") as directory:
        path = os.path.join(directory, "host.cfg")
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        try:
            with read_by_buildout(path) as buildout:
                expansions = expand(buildout)
                sections = {name: dict(options) for name, options in raw_sections(buildout).items()}
                parts = buildout["buildout"].get("parts", "").split()
                checks = nrpe_checks(buildout, parts, expansions)
        except zc.buildout.UserError as error:
            # a role that the model's refinements break: say which host's draft it was
            raise zc.buildout.UserError(f"{where}: {error}") from None
    return Draft(sections, expansions, checks)


def nrpe_checks(
    buildout: Buildout, parts: list[str], expansions: dict[str, Expansion]
) -> dict[str, list[str]]:
    """part -> the NRPE checks it defines: a meta section's exported facts; a level-1 nrpe
    part that no meta section generated, its own ``checks`` lines."""
    generated = {section for expansion in expansions.values() for section in expansion.sections}
    found: dict[str, list[str]] = {}
    for part in parts:
        raw = raw_section(buildout, part) or {}
        if part in expansions:
            names = expansions[part].facts.get("nrpe-checks", [])
        elif part not in generated and raw.get("recipe", "").strip() == "system_recipes:nrpe":
            lines = raw.get("checks", "").splitlines()
            names = [line.split(None, 1)[0] for line in lines if line.strip()]
        else:
            continue
        if names:
            found[part] = names
    return found


def need_option(
    info: RoleInfo, service: str, key: str, section: str, option: str | None, role: str
) -> None:
    """The model names ``[section] option`` of the role: it must be there."""
    options = info.sections.get(section)
    if options is None or (option is not None and option not in options):
        what = f"[{section}] {option}" if option else f"[{section}]"
        raise ModelError(
            f"services.{service}",
            key,
            f"{role} has no {what}",
            "a section and option of the role (`system-recipes explain` shows "
            "the sections a service section generates)",
        )
