"""The option reference, generated from the recipes' declared schemas (one page per recipe),
and the system model's reference (``systems-reference.md``, beside the recipes' directory)."""

from __future__ import annotations

import os
import sys
import textwrap

from system_recipes.core.buildout.recipe_names import recipe_entry_points
from system_recipes.core.declare.settings import SCHEMA as SETTINGS_SCHEMA
from system_recipes.fleet.model.spec import reference_markdown as systems_reference

#: the system model's reference, one level above the recipes' pages (docs/systems-reference.md)
SYSTEMS_REFERENCE = os.path.join("..", "systems-reference.md")

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_directory() -> str:
    """The checkout's docs/recipes when this copy runs from a source tree (an editable install),
    else docs/recipes below the current directory: an installed copy must never write into
    its own site-packages (a package manager owns those files)."""
    if os.path.isfile(os.path.join(CHECKOUT, "setup.cfg")) and os.path.isdir(
        os.path.join(CHECKOUT, "docs")
    ):
        return os.path.join(CHECKOUT, "docs", "recipes")
    return os.path.join("docs", "recipes")


def pages() -> dict[str, str]:
    result = {
        "settings.md": SETTINGS_SCHEMA.markdown(
            "[system-recipes] settings", "Read by every recipe from the `[system-recipes]` section."
        )
    }
    for name, entry_point in recipe_entry_points().items():
        cls = entry_point.load()
        module = sys.modules[cls.__module__]
        result[f"{name}.md"] = cls.schema.markdown(
            f"system_recipes:{name}", to_markdown(module.__doc__ or "")
        )
    result[SYSTEMS_REFERENCE] = systems_reference()
    return result


def to_markdown(doc: str) -> str:
    """A recipe's docstring (reST-ish, ending with ``Example::``) as markdown."""
    text, _, example = doc.strip().replace("``", "`").partition("Example::")
    text = text.strip()
    if example.strip():
        text += "\n\nExample:\n\n```ini\n" + textwrap.dedent(example).strip("\n") + "\n```"
    return text


def write_reference(directory: str | None, check: bool = False) -> int:
    directory = directory or default_directory()
    stale = []
    for name, text in pages().items():
        path = os.path.normpath(os.path.join(directory, name))
        try:
            with open(path, encoding="utf-8") as stream:
                current = stream.read()
        except FileNotFoundError:
            current = None
        if current != text:
            stale.append(path)
            if not check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as stream:
                    stream.write(text)
    if check and stale:
        print("stale reference (run `system-recipes docs`): " + ", ".join(stale), file=sys.stderr)
        return 1
    for path in stale if not check else []:
        print(f"wrote {path}")
    return 0
