"""The buildout extension: lock and recover at load, commit and reload at unload.

buildout calls ``unload`` only after a run that succeeded, so a run that failed anywhere
commits nothing.
"""

from __future__ import annotations

import os

from .core import run
from .core.settings import settings_from_buildout
from .meta.expand import expand

BUILDOUT_STATE = ("installed", "bin-directory", "parts-directory", "develop-eggs-directory")


def load(buildout) -> None:
    settings = settings_from_buildout(buildout)
    active = run.Run(buildout, settings, mode="apply")
    active.acquire()
    try:
        expand(buildout)  # meta sections become level-1 sections before any part is built
    except Exception:
        active.release()
        raise
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
    finally:
        active.release()
