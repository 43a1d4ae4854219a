"""``system-recipes explain``: a meta section's generated sections, as cfg text to paste.

Secrets are never printed: in a template section with ``secret = true`` every template
variable (the options that are not the recipe's own) and ``text`` are the file's content, and
so is any value that uses one of them through ``${section:option}``; their values are shown as
``(secret: value not shown)``, the wording ``plan`` uses for a secret file's content.
"""

from __future__ import annotations

import os
import re

import zc.buildout

from system_recipes.core.buildout.api import raw_sections, section_of, substituted
from system_recipes.core.buildout.loading import loaded
from system_recipes.core.declare.schema import Bool
from system_recipes.core.plan import report
from system_recipes.meta.expand import expand, origin

#: what is printed instead of a secret value (``plan`` prints "(secret: content of PATH not shown)")
MASK = "(secret: value not shown)"
#: buildout's ``${section:option}`` (an empty section is the section the value is in)
REFERENCE = re.compile(r"\$\{([^:}]*):([^}]+)\}")


def load(config: str):
    """Load a configuration and expand its meta sections; changes nothing on disk."""
    with loaded(config) as buildout:
        return buildout, expand(buildout)


def cfg_text(buildout, section: str, generator: str, secrets: Secrets | None = None) -> str:
    """One section as cfg text; values that did not come from ``generator`` say where from."""
    raw = section_of(buildout, section)
    secrets = secrets if secrets is not None else Secrets(buildout)
    lines = [f"[{section}]"]
    for option in sorted(raw, key=lambda o: (o != "recipe", o)):
        if option.startswith("_"):
            continue
        value = raw[option]
        source = origin(buildout, section, option)
        if source != generator:
            lines.append(f"# {option} from {_short(source)}")
        if secrets.is_secret(section, option):
            lines.append(f"{option} = {MASK}")
        elif "\n" in value:
            body = "\n".join("    " + line if line else "" for line in value.split("\n"))
            lines.append(f"{option} =" + ("\n" if not value.startswith("\n") else "") + body)
        else:
            lines.append(f"{option} = {value}")
    return "\n".join(lines) + "\n"


class Secrets:
    """Which options of a loaded configuration hold (or are made from) a secret."""

    def __init__(self, buildout):
        from system_recipes.recipes.template import SCHEMA

        self.raw = raw_sections(buildout)
        self.own: set[tuple[str, str]] = (
            set()
        )  # (section, option) that are a secret template's content
        for section, options in self.raw.items():
            if options.get("recipe", "").strip() != "system_recipes:template":
                continue
            if not _true(buildout, section, options.get("secret", "false")):
                continue
            self.own.update(
                (section, option)
                for option in options
                if option == "text"
                or option not in SCHEMA.options
                and option != "recipe"
                and not option.startswith("_")
            )
        self._memo: dict[tuple[str, str], bool] = {}

    def is_secret(self, section: str, option: str, seen: frozenset = frozenset()) -> bool:
        """A secret itself, or a value that ``${...}`` takes (directly or through other
        options) from one."""
        key = (section, option)
        if key in self.own:
            return True
        if key in self._memo:
            return self._memo[key]
        if key in seen:
            return False  # a cycle: buildout reports it
        value = self.raw.get(section, {}).get(option, "")
        found = any(
            self.is_secret(other or section, name, seen | {key})
            for other, name in REFERENCE.findall(value)
        )
        self._memo[key] = found
        return found


def _true(buildout, section: str, text: str) -> bool:
    """``secret``'s value, substituted when it is a reference; a value that cannot be worked
    out counts as true (masking too much is the safe mistake)."""
    try:
        if "${" in text:
            value = substituted(buildout, section, section_of(buildout, section), "secret")
            if value is None:
                return True
            text = value
        return Bool().parse(text)
    except Exception:  # noqa: BLE001 -- any failure to read it: treat as secret
        return True


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
        raise zc.buildout.UserError(
            f"[{unknown[0]}] is not a meta-recipe part (meta parts: {known})"
        )
    if not expansions:  # nothing generated: say so, and what the parts are
        parts = buildout["buildout"].get("parts", "").split()
        report.say(
            f"explain: {config} has no meta-recipe section to explain; its "
            f"{len(parts)} part{'s' if len(parts) != 1 else ''} "
            f"{'are' if len(parts) != 1 else 'is'} level-1: {', '.join(parts) or 'none'} "
            f"(`system-recipes plan -c {config}` shows what "
            f"{'they write' if len(parts) != 1 else 'it writes'})"
        )
        return 0
    secrets = Secrets(buildout)
    for name in sections or list(expansions):
        generator = f"{section_of(buildout, name)['recipe'].strip()} [{name}]"
        report.say(
            f"# [{name}] generates {len(expansions[name].sections)} sections; values "
            f"come from {generator} unless marked"
        )
        for section in expansions[name].sections:
            report.say("")
            report.say(cfg_text(buildout, section, generator, secrets).rstrip("\n"))
        report.say("")
    return 0
