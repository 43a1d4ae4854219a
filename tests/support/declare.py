"""Recipes constructed in-process, in a run of their own below a scratch root.

The fastest real path through a recipe: its ``__init__`` declares the files, the run plans and
validates them with the real tools (``validate_declared``), nothing is written.
"""

from __future__ import annotations

from system_recipes.core.plan import run


class FakeBuildout(dict):
    """Just enough of a buildout for recipes' ``__init__`` and a run: its sections."""


def fake_run(
    root: str, parts: str, mode: str = "plan", **settings: str
) -> tuple[FakeBuildout, run.Run]:
    """A buildout whose ``[system-recipes]`` puts the host below ``root``, and its run."""
    buildout = FakeBuildout()
    buildout["buildout"] = {"directory": root, "parts": parts}
    buildout["system-recipes"] = {"root": root, "layout": "debian", **settings}
    return buildout, run.Run(buildout, mode=mode)


def declare_parts(module, root: str, parts: dict[str, dict]) -> run.Run:
    """Construct ``module.Recipe`` for each part in a plan-mode run; plan and validate."""
    buildout, active = fake_run(root, " ".join(parts))
    for name, options in parts.items():
        module.Recipe(buildout, name, dict(options))
    active.validate_declared()
    return active


def declare(module, root: str, options: dict, name: str = "part") -> bytes:
    """One part of ``module``'s recipe, planned and validated: the content of its first file."""
    return declare_parts(module, root, {name: options}).declared[name].files[0].content
