"""Meta-recipe expansion: one section with the essentials becomes level-1 sections.

buildout substitutes a section's ``${...}`` references before it constructs the section's
recipe, so a meta section that refers to values it generates (``command =
${shop:prefix}/bin/shop-server``) cannot be expanded by its own recipe. The expansion runs
instead when the system-recipes extension loads (and when ``plan``/``explain`` load a
configuration), before any part is constructed: every section whose recipe is a meta-recipe
gets its generated sections added to the buildout -- merged *under* a section of the same name
that the profile already has (the profile wins, option by option) -- and inserted into
``parts`` right after it. Generated values are annotated, so ``explain`` says where every value
came from.
"""

from __future__ import annotations

from system_recipes.core.buildout.api import (
    annotate,
    raw_section,
    section_of,
    set_raw_section,
    source_of,
)
from system_recipes.core.buildout.recipe_names import our_recipe, recipe_class
from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.specs import GENERATED_FROM, Expansion, GeneratedFrom

#: Expansion lives in core (the run reports by it); meta-recipes take it from here
__all__ = ["Expansion", "expand", "meta_sections", "origin"]

#: buildout attribute: generated section -> the meta section that generated it (not an option:
#: buildout warns about options no recipe reads)
GENERATED = "_system_recipes_generated"
#: meta section -> its generated sections (in order): GENERATED the other way round, so a meta
#: part finds its own without going through every generated section of the host
GENERATED_BY = "_system_recipes_generated_by"


def meta_recipe(recipe: str):
    """The class of a meta-recipe (a system-recipes recipe with ``generate``), else None."""
    name = our_recipe(recipe) if recipe else None
    if name is None:
        return None
    cls = recipe_class(name)
    return cls if hasattr(cls, "generate") else None


def meta_sections(buildout) -> list[tuple[str, str]]:
    """(section, recipe) of every configured part whose recipe is a meta-recipe."""
    parts = buildout["buildout"].get("parts", "").split()
    found = []
    for name in parts:
        raw = raw_section(buildout, name) or {}
        recipe = raw.get("recipe", "").strip()
        if meta_recipe(recipe) is not None:
            found.append((name, recipe))
    return found


def expansion_of(buildout, name: str, recipe: str) -> Expansion:
    return meta_recipe(recipe).generate(name, dict(section_of(buildout, name)), buildout)


def expand(buildout) -> dict[str, Expansion]:
    """Add every meta section's generated sections to ``buildout``; returns them by section."""
    expansions: dict[str, Expansion] = {}
    metas = meta_sections(buildout)
    if not metas:
        return expansions
    parts = buildout["buildout"].get("parts", "").split()
    # the generated sections go right after their meta section, the parts list is rebuilt once
    # (an insertion per meta section, and a membership test in the list, were O(N^2))
    present = set(parts)
    after: dict[str, list[str]] = {}
    generated_by: dict[str, str] = {}
    for name, recipe in metas:
        expansion = expansion_of(buildout, name, recipe)
        expansions[name] = expansion
        for section, options in expansion.sections.items():
            if section in generated_by:
                raise ConfigError(
                    name,
                    None,
                    f"generates [{section}], which [{generated_by[section]}] generates too",
                    "distinct service names",
                )
            generated_by[section] = name
            # the profile's own options (a second expansion, after a load, sees the merged
            # section: GeneratedFrom keeps the first expansion's)
            refined = set(raw_section(buildout, section) or {})
            _merge(buildout, name, section, options, expansion)
            _record_blame(buildout, name, section, refined, expansion)
        raw = section_of(buildout, name)
        for option, value in expansion.exposed.items():
            if option not in raw:
                raw[option] = value
                annotate(buildout, name, option, value, f"system_recipes:service [{name}]")
        new = [s for s in expansion.sections if s not in present]
        present.update(new)
        after.setdefault(name, []).extend(new)
    ordered = []
    for part in parts:
        ordered.append(part)
        ordered += after.pop(part, ())  # after its first mention only
    buildout["buildout"]["parts"] = "\n".join(ordered)
    return expansions


def _merge(
    buildout, meta: str, section: str, options: dict[str, str], expansion: Expansion
) -> None:
    """Generated options under the profile's own section of that name (profile wins)."""
    existing = raw_section(buildout, section)
    if existing is not None:
        recipe = existing.get("recipe", "").strip()
        if section in getattr(buildout, GENERATED, {}):
            return  # expanded already (plan after a load)
        if recipe and recipe != options["recipe"]:
            raise ConfigError(
                section,
                "recipe",
                f"[{meta}] generates a section of this name "
                f"with recipe {options['recipe']}, and this one is {recipe}",
                f"no recipe option here (to refine the generated section), or "
                f"another service name in [{meta}]",
            )
    merged = dict(options)
    merged.update(existing or {})
    if not hasattr(buildout, GENERATED):
        setattr(buildout, GENERATED, {})
        setattr(buildout, GENERATED_BY, {})
    getattr(buildout, GENERATED)[section] = meta
    getattr(buildout, GENERATED_BY).setdefault(meta, {})[section] = None
    set_raw_section(buildout, section, merged)
    source = f"system_recipes:service [{meta}]"
    for option, value in options.items():
        if existing is not None and option in existing:
            continue
        origin = expansion.origins.get((section, option))
        where = source
        found = source_of(buildout, meta, origin) if origin else None
        if found is not None:
            where = found  # found beside the file that set it (templates)
        annotate(buildout, section, option, value, where)


def _record_blame(
    buildout,
    meta: str,
    section: str,
    refined: set[str],
    expansion: Expansion,
) -> None:
    """Which option of ``meta`` each generated value comes from, unless the profile refined it
    (then the error is in the profile's own section, as written)."""
    table = getattr(buildout, GENERATED_FROM, None)
    if table is None:
        table = GeneratedFrom()
        setattr(buildout, GENERATED_FROM, table)
    table.add(section, meta, expansion, refined)


def origin(buildout, section: str, option: str) -> str:
    """Where ``[section] option`` was set: a file, a meta section, or a command line."""
    source = source_of(buildout, section, option)
    return source if source is not None else "computed"
