"""``system-recipes explain``: a meta section's generated sections, as cfg text to paste."""

from __future__ import annotations

import os

import zc.buildout

from ..core import report
from .expand import expand, origin


def load(config: str):
    """Load a configuration and expand its meta sections; changes nothing on disk."""
    from ..cli import loaded

    with loaded(config) as buildout:
        return buildout, expand(buildout)


def cfg_text(buildout, section: str, generator: str) -> str:
    """One section as cfg text; values that did not come from ``generator`` say where from."""
    raw = buildout._raw[section]
    lines = [f"[{section}]"]
    for option in sorted(raw, key=lambda o: (o != "recipe", o)):
        if option.startswith("_"):
            continue
        value = raw[option]
        source = origin(buildout, section, option)
        if source != generator:
            lines.append(f"# {option} from {_short(source)}")
        if "\n" in value:
            body = "\n".join("    " + line if line else "" for line in value.split("\n"))
            lines.append(f"{option} =" + ("\n" if not value.startswith("\n") else "") + body)
        else:
            lines.append(f"{option} = {value}")
    return "\n".join(lines) + "\n"


def _short(source: str) -> str:
    if os.path.isabs(source):
        try:
            return os.path.relpath(source)
        except ValueError:
            return source
    return source


def run_explain(config: str, sections: list[str]) -> int:
    buildout, expansions = load(config)
    unknown = [s for s in sections if s not in expansions]
    if unknown:
        known = ", ".join(expansions) or "none in this configuration"
        raise zc.buildout.UserError(f"[{unknown[0]}] is not a meta-recipe part (meta parts: "
                                    f"{known})")
    for name in sections or list(expansions):
        generator = f"{buildout._raw[name]['recipe'].strip()} [{name}]"
        report.say(f"# [{name}] generates {len(expansions[name].sections)} sections; values "
                   f"come from {generator} unless marked")
        for section in expansions[name].sections:
            report.say("")
            report.say(cfg_text(buildout, section, generator).rstrip("\n"))
        report.say("")
    return 0
