"""The buildout extension: lock and recover at load, commit and reload at unload.

buildout calls ``unload`` only after a run that succeeded, so a run that failed anywhere
commits nothing -- buildout's own ``installed.cfg`` included (see :class:`InstalledState`).
"""

from __future__ import annotations

import os

from .core import run
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


def load(buildout) -> None:
    settings = settings_from_buildout(buildout)
    active = run.Run(buildout, settings, mode="apply")
    active.acquire()
    try:
        expand(buildout)  # meta sections become level-1 sections before any part is built
    except Exception:
        active.release()
        raise
    active.installed_state = InstalledState(buildout)
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
