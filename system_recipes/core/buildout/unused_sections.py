"""A section nothing uses is a mistake, not a no-op: ``plan -c host.cfg web-confg:port=8081``
(or a ``[web-confg]`` refinement in a profile) would otherwise report "0 files to change".

buildout reads every section and builds only those a part needs (``parts``, what they refer to
with ``${...}``, what a meta-recipe generated): a section it never built, with no ``recipe`` of
its own, changes nothing. A section with a recipe that ``parts`` leaves out is buildout's way of
keeping a part switched off, and is left alone, with the sections that refine what it would
generate (``[NAME-...]``: a meta section's generated sections are named so).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from system_recipes.core.buildout import api as buildout_api
from system_recipes.core.declare.errors import ConfigError

if TYPE_CHECKING:  # zc.buildout has no annotations: mypy takes a Buildout for what it is
    from zc.buildout.buildout import Buildout

#: sections read as settings, never built as a part: buildout's, its version pins, ours, and
#: the ``[fleet]`` record of a compiled host.cfg (fleet/compile/compiler.py), which fleet-host reads
SETTINGS = frozenset({"buildout", "versions", "system-recipes", "fleet"})


def check_sections_used(buildout: Buildout) -> None:
    """Raise :class:`.ConfigError` naming the first section that no part uses, with the
    closest one that is used; an override on the command line is named as such."""
    built = buildout_api.constructed_sections(buildout)
    if built is None:
        return  # a plain mapping stands in for buildout (tests/support/declare.py)
    if not buildout["buildout"].get("parts", "").split():
        return  # ``parts =``: everything is removed (an RPM's %preun), nothing refines anything
    raw = buildout_api.raw_sections(buildout)
    macros = {
        name.strip()
        for options in raw.values()
        for name in options.get("<", "").split()  # ``<= macro``: read raw, at construction
    }
    unused = sorted(set(raw) - built - SETTINGS - macros)
    # a part left out of ``parts`` is switched off, and so are the refinements of what it
    # would generate, were it a meta section (``[shop-config]`` of a dropped ``[shop]``)
    switched_off = tuple(f"{name}-" for name in unused if "recipe" in raw[name])
    for name in unused:
        options = raw[name]
        if "recipe" in options or name.startswith(switched_off):
            continue
        found = difflib.get_close_matches(name, sorted(built - SETTINGS), n=1, cutoff=0.6)
        hint = f"; did you mean '{found[0]}'?" if found else ""
        overrides = [
            o for o in options if buildout_api.source_of(buildout, name, o) == COMMAND_LINE
        ]
        if overrides:
            raise ConfigError(
                name,
                overrides[0],
                f"set on the command line, but no part uses this section{hint}",
                "[section:]option=value naming a part's section",
            )
        raise ConfigError(
            name,
            None,
            f"no part uses this section{hint}",
            "a part in [buildout] parts, a section a part refers to, or one it refines",
        )


#: the source buildout gives an option set as ``section:option=value`` on its command line
COMMAND_LINE = "COMMAND_LINE_VALUE"
