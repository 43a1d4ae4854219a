"""The buildout extension: lock and recover at load, commit and reload at unload.

buildout calls ``unload`` only after a run that succeeded, so a run that failed anywhere
commits nothing -- buildout's own ``installed.cfg`` included (see
``core.buildout_api.DeferredInstalled``).
"""

from __future__ import annotations

import logging
import os

from . import daemons  # noqa: F401  (registers every validator and reload handler)
from .core import buildout_api, run
from .core.recipe_names import check_recipe_names
from .core.settings import settings_from_buildout
from .meta.expand import expand

BUILDOUT_STATE = ("installed", "bin-directory", "parts-directory", "develop-eggs-directory")
#: the requirement buildout loads this package's recipes by (``recipe = system_recipes:NAME``)
RECIPE_DISTRIBUTION = "system_recipes"


def ours(buildout, part: str) -> bool:
    """A part of a system-recipes recipe: every one has the same signature (the same
    distributions), so buildout computes it once for all of them."""
    return buildout[part].get("recipe", "").strip().startswith(f"{RECIPE_DISTRIBUTION}:")


class TruthfulBuildoutLog(logging.Filter):
    """buildout's own lines, shown with -v, say what they mean: it uninstalls a part whose
    options changed before it installs it again (an update, not a removal), and it names
    directories with unresolved ``..``."""

    def __init__(self, configured: set[str], existing: set[str]):
        super().__init__()
        self.configured, self.existing = configured, existing
        self.updating = False  # inside the uninstall step of a part that is being updated

    def filter(self, record: logging.LogRecord) -> bool:
        part = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if record.msg == buildout_api.UNINSTALLING:
            self.updating = part in self.configured
            return not self.updating
        if record.msg == buildout_api.RUNNING_UNINSTALL and self.updating:
            return False
        self.updating = False
        if record.msg == buildout_api.INSTALLING and part in self.existing:
            record.msg = buildout_api.UPDATING
        if record.msg == buildout_api.CREATING_DIRECTORY and isinstance(part, str):
            record.args = (os.path.normpath(part),)
        return True


def quiet_buildout(buildout, active: run.Run) -> None:
    """Without -v a run prints one line per part and a summary: buildout's own lines
    (``Installing X.``) only with -v, then made truthful."""
    logger = logging.getLogger(buildout_api.LOGGER)
    for old in [f for f in logger.filters if isinstance(f, TruthfulBuildoutLog)]:
        logger.removeFilter(old)
    configured = set(buildout["buildout"].get("parts", "").split())
    existing = set(active.manifest().parts)
    existing |= {
        name
        for name, expansion in active.expansions.items()
        if existing.intersection(expansion.sections)
    }
    logger.addFilter(TruthfulBuildoutLog(configured, existing))
    if not active.verbose:
        logger.setLevel(logging.WARNING)


def load(buildout) -> None:
    check_recipe_names(buildout)  # a misspelled system_recipes:NAME: one line, not a traceback
    settings = settings_from_buildout(buildout)
    active = run.Run(buildout, settings, mode="apply")
    active.acquire()
    try:
        active.expand(expand)
    except Exception:
        active.release()
        raise
    quiet_buildout(buildout, active)
    active.defer_installed_writes()
    buildout_api.cache_recipe_loading(RECIPE_DISTRIBUTION)
    buildout_api.sign_parts_once(buildout, lambda part: ours(buildout, part))
    # buildout creates its own directories with os.mkdir: their parents must exist
    for key in BUILDOUT_STATE:
        value = buildout["buildout"].get(key)
        if value:
            os.makedirs(os.path.dirname(os.path.abspath(value)), mode=0o700, exist_ok=True)


def unload(buildout) -> None:
    active = run.current(buildout)
    if active is None or active.mode != "apply":
        return
    try:
        active.commit()
        active.flush_installed()
        active.protect_buildout_state()
    finally:
        active.release()
