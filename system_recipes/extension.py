"""The buildout extension: lock and recover at load, commit and reload at unload.

buildout calls ``unload`` only after a run that succeeded, so a run that failed anywhere
commits nothing -- buildout's own ``installed.cfg`` included (see
``core.buildout_install.DeferredInstalled``).
"""

from __future__ import annotations

import logging
import os

from system_recipes.core.buildout import api as buildout_api
from system_recipes.core.buildout.recipe_names import check_recipe_names
from system_recipes.core.declare.settings import settings_from_buildout
from system_recipes.core.disk.accounts import ACCOUNT_FILES
from system_recipes.core.disk.manifest import MANIFEST_NAME
from system_recipes.core.fastpath import converge_index
from system_recipes.core.fastpath import record as fastpath
from system_recipes.core.plan import report, run
from system_recipes.daemons import every  # noqa: F401  (registers every validator and reload handler)
from system_recipes.meta.expand import expand

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
    buildout_api.quiet_context_for_named_errors()  # our one-line errors print without "While:"
    check_recipe_names(buildout)  # a misspelled system_recipes:NAME: one line, not a traceback
    # the key first: nothing has touched the configuration as read yet
    key = fastpath.configuration_key(buildout_api.raw_sections(buildout))
    fastpath.listen()  # from here on, what the run reads is noted (os-release, for the layout)
    settings = settings_from_buildout(buildout)
    # the account files: with the root at /, owners are looked up through NSS (C code that
    # no audit hook sees)
    for name in ACCOUNT_FILES:
        fastpath.note_path(settings.target(name))
    active = run.Run(buildout, settings, mode="apply")
    active.acquire()
    try:
        stop_when_nothing_changed(buildout, active, key)
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


def stop_when_nothing_changed(buildout, active: run.Run, key: str) -> None:
    """The fast path (core.fastpath): after the lock and recovery, before any meta section
    expands or any part is constructed. Otherwise this run notes what it reads."""
    record: fastpath.Record | None = None
    why: str | None = "fast-path = off"
    if active.settings.fast_path == "on":  # off: no record is read, no path compared
        path = fastpath.record_path(active.state, active.settings.instance)
        record = fastpath.Record.load(path) if active.recovered == "clean" else None
        why = record.first_difference(key) if record else "no record of a clean run"
    if record is not None and why is None:
        fastpath.stop_listening()
        write_index(buildout, active, key)  # through converge: its next run needs no buildout
        report.say(
            f"system-recipes: nothing to do: {record.parts} part(s) as the last run left them "
            f"({record.written})"
        )
        active.release()
        raise SystemExit(0)  # buildout's main lets it through: exit 0, nothing else runs
    if active.verbose:
        report.say(f"system-recipes: a full run: {why}")
    # the record stays while this run may still fail (bad input changes nothing): it proves
    # only what it holds, and a failed run leaves every path it watches as it was or changed
    active.fastpath_key = key if active.settings.fast_path == "on" else None


def remember_a_clean_run(buildout, active: run.Run) -> None:
    """Leave the record for the next run's fast path, only after a clean, full run of parts
    that are all ours: an update of another recipe may do anything, every time."""
    key = active.fastpath_key
    plan = active.last_plan
    configured = active.configured_parts()
    fastpath.stop_listening()
    path = fastpath.record_path(active.state, active.settings.instance)
    if (
        key is None
        or plan is None
        or plan.drift
        or active.warnings
        or active.installed_state is None
        or not active.installed_state.full_run  # ``buildout install PART``: the rest unchecked
        or not set(active.declared) <= set(active.staged)
        or not all(ours(buildout, part) for part in configured)
        or buildout["buildout"].get("develop", "").strip()
    ):
        fastpath.forget(path)  # this run succeeded but was not clean: no proof of it
        return
    settings = active.settings
    managed: list[tuple[str, str]] = []
    for books in active.manifest().parts.values():
        for kind, stat_kind in (("files", "full"), ("links", "full"), ("directories", "directory")):
            managed += [(settings.target(path), stat_kind) for path in books.get(kind, {})]
    installed = buildout["buildout"].get("installed", "")
    state_files = [os.path.join(active.state, MANIFEST_NAME), *([installed] if installed else [])]
    record = fastpath.make_record(key, managed, state_files, len(configured), active.state)
    fastpath.write_private(path, record.dumps())
    write_index(buildout, active, key)


def write_index(buildout, active: run.Run, key: str) -> None:
    """A run through ``converge`` leaves it the index it checks before importing buildout."""
    if converge_index.REQUEST:
        files = buildout_api.configuration_files(buildout)
        if files is not None:
            converge_index.write_index(
                converge_index.REQUEST[-1], files, active.state, active.settings.instance, key
            )


def unload(buildout) -> None:
    active = run.current(buildout)
    if active is None or active.mode != "apply":
        return
    try:
        active.commit()
        active.flush_installed()
        active.protect_buildout_state()
        remember_a_clean_run(buildout, active)
    finally:
        fastpath.stop_listening()
        active.release()
