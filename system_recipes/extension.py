"""The buildout extension: lock and recover at load, commit and reload at unload.

buildout calls ``unload`` only after a run that succeeded, so a run that failed anywhere
commits nothing -- buildout's own ``installed.cfg`` included (see :class:`InstalledState`).
"""

from __future__ import annotations

import logging
import os

import zc.buildout.buildout

from .core import run
from .core.recipe_names import check_recipe_names
from .core.settings import settings_from_buildout
from .meta.expand import expand

BUILDOUT_STATE = ("installed", "bin-directory", "parts-directory", "develop-eggs-directory")


class InstalledState:
    """buildout rewrites ``installed.cfg`` after every part it installs and appends the whole
    parts list after every part it updates: O(N^2) in the parts of a host (12 MB after three
    no-op runs of 500 parts). Recipes here only stage their changes until the commit, so the
    file is written once, after the commit, with the last state buildout asked for."""

    def __init__(self, buildout):
        self.save, self.append = buildout._save_installed_options, buildout._update_installed
        self.read = buildout._read_installed_part_options
        self.saved = None  # the options buildout last asked to save (it keeps mutating them)
        self.appended: dict[str, str] = {}
        buildout._save_installed_options = self._defer_save
        buildout._update_installed = self._defer_append
        self.path = buildout["buildout"].get("installed")

    def _defer_save(self, options) -> None:
        self.saved, self.appended = options, {}

    def _defer_append(self, **options) -> None:
        self.appended.update(options)

    def flush(self) -> None:
        mask = os.umask(0o077)  # it holds every option, secrets included
        try:
            if self.saved is not None:
                self.save(self.saved)
                if self.appended:
                    self.append(**self.appended)
            elif self.appended and self.path and os.path.isfile(self.path):
                # no part was (re)installed: rewrite the file compact instead of appending
                options, _ = self.read()
                for key, value in self.appended.items():
                    options["buildout"][key] = value
                self.save(options)
        finally:
            os.umask(mask)


def _cache_recipe_loading() -> None:
    """buildout resolves a recipe's distribution again for every part that uses it
    (``_install_and_load``: a working-set resolve each time), a fifth of a no-op run of a host
    with hundreds of parts. Within one process the answer for system-recipes' own recipes does
    not change, so it is looked up once per recipe."""
    original = zc.buildout.buildout._install_and_load
    if getattr(original, "system_recipes_cache", None) is not None:
        return
    cache: dict[tuple[str, str, str], object] = {}

    def install_and_load(spec, group, entry, buildout):
        if spec != "system_recipes":
            return original(spec, group, entry, buildout)
        key = (spec, group, entry)
        if key not in cache:
            cache[key] = original(spec, group, entry, buildout)
        return cache[key]

    install_and_load.system_recipes_cache = cache
    zc.buildout.buildout._install_and_load = install_and_load


def _sign_recipes_once(buildout) -> None:
    """buildout signs every part with its recipe's distributions, resolving the working set
    once per part; every part of a system-recipes recipe gets the same signature, so it is
    computed for one of them and copied to the rest."""
    original = buildout._compute_part_signatures

    def compute(parts):
        ours = [p for p in parts
                if buildout[p].get("recipe", "").strip().startswith("system_recipes:")]
        original([p for p in parts if p not in ours] + ours[:1])
        if ours:
            signature = buildout[ours[0]]["__buildout_signature__"]
            for part in ours[1:]:
                buildout[part]["__buildout_signature__"] = signature

    buildout._compute_part_signatures = compute


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
        if record.msg == "Uninstalling %s.":
            self.updating = part in self.configured
            return not self.updating
        if record.msg == "Running uninstall recipe." and self.updating:
            return False
        self.updating = False
        if record.msg == "Installing %s." and part in self.existing:
            record.msg = "Updating %s."
        if record.msg == "Creating directory %r." and isinstance(part, str):
            record.args = (os.path.normpath(part),)
        return True


def quiet_buildout(buildout, active: run.Run) -> None:
    """Without -v a run prints one line per part and a summary: buildout's own lines
    (``Installing X.``) only with -v, then made truthful."""
    logger = logging.getLogger("zc.buildout")
    for old in [f for f in logger.filters if isinstance(f, TruthfulBuildoutLog)]:
        logger.removeFilter(old)
    configured = set(buildout["buildout"].get("parts", "").split())
    existing = set(active.manifest().parts)
    existing |= {name for name, expansion in active.expansions.items()
                 if existing.intersection(expansion.sections)}
    logger.addFilter(TruthfulBuildoutLog(configured, existing))
    if not active.verbose:
        logger.setLevel(logging.WARNING)


def load(buildout) -> None:
    check_recipe_names(buildout)  # a misspelled system_recipes:NAME: one line, not a traceback
    settings = settings_from_buildout(buildout)
    active = run.Run(buildout, settings, mode="apply")
    active.acquire()
    try:
        # meta sections become level-1 sections before any part is built
        active.expansions = expand(buildout)
    except Exception:
        active.release()
        raise
    quiet_buildout(buildout, active)
    active.installed_state = InstalledState(buildout)
    _cache_recipe_loading()
    _sign_recipes_once(buildout)
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
        active.installed_state.flush()
        active.protect_buildout_state()
    finally:
        active.release()
