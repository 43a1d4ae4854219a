"""Unknown ``system_recipes:NAME`` recipes are refused before buildout tries to load them.

buildout reports a recipe entry point it cannot find as an "internal error" with a
traceback. The extension (and ``plan``/``explain``) check every section's recipe first and
refuse a misspelled one in one line, with the closest name. The known names are the package's
own ``zc.buildout`` entry points, so a new recipe needs no change here.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from typing import TYPE_CHECKING

from system_recipes.core.buildout.api import raw_sections
from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.schema import did_you_mean

if TYPE_CHECKING:  # zc.buildout has no annotations: mypy takes a Buildout for what it is
    from zc.buildout.buildout import Buildout

DISTRIBUTION = "system-recipes"


@functools.lru_cache(maxsize=1)
def recipe_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The one list of recipes: this distribution's ``zc.buildout`` entry points (setup.cfg),
    in the order they are declared. The docs, the meta-recipe expansion and this check derive
    from it; adding a recipe is one module plus its entry point."""
    entry_points = importlib.metadata.distribution(DISTRIBUTION).entry_points
    return {ep.name: ep for ep in entry_points if ep.group == "zc.buildout"}


def known_recipes() -> frozenset[str]:
    """The entry point names of this distribution's ``zc.buildout`` group."""
    return frozenset(recipe_entry_points())


def recipe_class(name: str) -> type:
    """The recipe class ``system_recipes:NAME`` names (loaded through its entry point)."""
    return recipe_entry_points()[name].load()


def our_recipe(spec: str) -> str | None:
    """``NAME`` of a ``system_recipes:NAME`` recipe option this distribution has, else None."""
    requirement, _, entry = spec.strip().partition(":")
    if not _ours(requirement.strip()):
        return None
    entry = entry.strip() or "default"
    return entry if entry in recipe_entry_points() else None


def _ours(requirement: str) -> bool:
    """``system_recipes`` or ``system-recipes`` (any case): the requirement names this
    distribution, as buildout (pkg_resources) would resolve it."""
    return re.sub(r"[-_.]+", "-", requirement).lower() == DISTRIBUTION


def check_recipe_names(buildout: Buildout) -> None:
    """Raise ConfigError for the first section whose recipe names this distribution and an
    entry point it does not have (``recipe = system_recipes:cronn``)."""
    known = known_recipes()
    for section, raw in raw_sections(buildout).items():
        spec = raw.get("recipe", "").strip()
        if not spec or "${" in spec:
            continue
        requirement, _, entry = spec.partition(":")
        if not _ours(requirement.strip()):
            continue
        entry = entry.strip() or "default"
        if entry in known:
            continue
        prefix = requirement.strip()
        guess = did_you_mean(entry, sorted(known))  # the names only: they share the prefix
        hint = (
            f" (did you mean '{prefix}:{guess}'?)"
            if guess
            else f" (expected one of {', '.join(f'{prefix}:{name}' for name in sorted(known))})"
        )
        raise ConfigError(section, "recipe", f"unknown recipe {spec[:100]}{hint}")
