"""Load a host configuration and plan it in this process, changing nothing on disk: ``plan``,
``fleet-host plan`` (the host step imports it when it plans) and the tests that drive recipes."""

from __future__ import annotations

import zc.buildout

from system_recipes.core.buildout.loading import loaded
from system_recipes.daemons import every  # noqa: F401  (registers every validator and reload handler)


def load_and_plan(config: str, assignments: list[str] | None = None, problems: list | None = None):
    """Load a host configuration, construct every part (render and validate), and plan.

    Changes nothing on disk. Returns ``(run, plan)``; raises ``zc.buildout.UserError`` on bad
    input -- or, given a ``problems`` list, collects every part's problems there and goes on
    (the plan is then None when there were any). Tests use it to drive recipes in-process.
    """
    from system_recipes.core.plan.run import Run
    from system_recipes.meta.expand import expand

    with loaded(config, assignments) as buildout:
        active = Run(buildout, mode="plan")
        active.acquire()
        try:
            active.expand(expand)
            for part in buildout["buildout"].get("parts", "").split():
                try:
                    buildout[part]  # constructs the recipe: it renders and declares its files
                except zc.buildout.UserError as error:
                    if problems is None:
                        raise
                    problems += getattr(error, "problems", None) or [error]
            if problems:
                return active, None
            try:
                plan = active.build_plan(dict(active.declared))
            except zc.buildout.UserError as error:
                if problems is None:
                    raise
                problems.append(error)
                return active, None
        finally:
            active.release()
    return active, plan
