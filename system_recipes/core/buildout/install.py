"""Every use of zc.buildout's private API for ``installed.cfg`` and the install loop, in one
place: buildout's writes of ``installed.cfg`` deferred until the commit (DeferredInstalled),
the file read with equal values shared, and ``Buildout.install``'s two loops (uninstall what
changed or left, install or update the rest) done in one pass instead of O(N^2).

Separate from :mod:`.buildout_api` (the rest of buildout's private API: the configuration as
read, recipe loading and signatures, the log lines, the configuration files) because it is the
largest use and one job: the install of the parts. The same rule holds here as there: no other
module touches a ``_name`` of buildout, and tests/core/test_buildout_api.py checks each assumption
against the pinned buildout.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import zc.buildout.buildout as _buildout

from system_recipes.core.buildout.api import INSTALLING, SIGNATURE, UPDATING

if TYPE_CHECKING:  # zc.buildout has no annotations: mypy takes these for what they are
    from zc.buildout.buildout import Buildout, Options

#: installed.cfg as buildout reads it: every section's options, and whether the file exists
Installed = tuple[dict[str, "Options"], bool]


class DeferredInstalled:
    """buildout rewrites ``installed.cfg`` after every part it installs and appends the whole
    parts list after every part it updates: O(N^2) in the parts of a host (12 MB after three
    no-op runs of 500 parts). Recipes here only stage their changes until the commit, so the
    file is written once, after the commit, with the last state buildout asked for; a run
    that fails writes none of it.

    ``buildout.install`` calls its writers through the instance (``self._save_installed_options
    (options)`` rewrites the file, ``self._update_installed(**options)`` appends a
    ``[buildout]`` section), so replacing them on the instance defers them."""

    def __init__(self, buildout: Buildout) -> None:
        self.buildout = buildout
        self.save, self.append = buildout._save_installed_options, buildout._update_installed
        self.read = buildout._read_installed_part_options  # -> ({section: options}, exists)
        #: the options buildout last asked to save (it keeps mutating them)
        self.saved: dict[str, Options] | None = None
        self.appended: dict[str, str] = {}
        self.remove = False  # no part is left: the file goes (buildout removes it)
        #: every configured part was installed or updated (not ``buildout install PART...``)
        self.full_run = False
        buildout._save_installed_options = self._defer_save
        buildout._update_installed = self._defer_append
        buildout._read_installed_part_options = self._read_for_install
        self.path = buildout["buildout"].get("installed")
        self._installed: tuple | None = None  # (options, exists, parts text) as read
        self._sign: Callable[[list[str]], None] | None = None  # buildout's, while replaced

    def _defer_save(self, options: dict[str, Options]) -> None:
        self.saved, self.appended = options, {}

    def _defer_append(self, **options: str) -> None:
        self.appended.update(options)

    def flush(self) -> None:
        if self.remove:
            if self.path and os.path.isfile(self.path):
                os.remove(self.path)
            return
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

    # -- the install loop, in one pass ------------------------------------------------------
    # buildout's loops (``Buildout.install``, after ``_compute_part_signatures``) rebuild the
    # list of installed parts and join it into a string after every part, and test membership
    # in lists: O(N^2) in the parts of a host (1.5 s of a no-op at 5000 parts). They run inside
    # ``install``, which loads the extensions, so its code cannot be replaced; instead buildout
    # reads an installed.cfg without parts (``_read_for_install``), the loops below do its work
    # where it computes the signatures, and they leave it no part to install.
    def _read_for_install(self) -> Installed:
        options, exists = read_installed_shared(self.read)
        self._installed = (options, exists, options["buildout"]["parts"])
        options["buildout"]["parts"] = ""  # buildout's own loops: nothing installed...
        if self._sign is None:
            self._sign = self.buildout._compute_part_signatures
            self.buildout._compute_part_signatures = self._install
        return options, False  # ...and no file to remove when no part is left

    def _install(self, parts: list[str]) -> None:
        buildout, sign = self.buildout, self._sign
        assert sign is not None and self._installed is not None
        buildout._compute_part_signatures, self._sign = sign, None  # once per install
        sign(parts)
        options, exists, text = self._installed
        options["buildout"]["parts"] = text
        develop_eggs = options["buildout"].get("installed_develop_eggs", "")
        if exists:  # what buildout skipped, being told there was no file
            buildout._update_installed(installed_develop_eggs=develop_eggs)
        installed = dict.fromkeys(text.split())  # ordered, O(1) membership and removal
        uninstall_missing = parts is buildout._parts  # not ``buildout install PART...``
        self.full_run = uninstall_missing
        wanted = set(parts)
        changed = False
        for part in reversed(list(installed)):
            if part in wanted:
                if not _reinstall(buildout, part, options[part]):
                    continue
            elif not uninstall_missing:
                continue
            buildout._uninstall_part(part, options)
            del installed[part]
            changed = True
        saved = False
        index = 0
        while index < len(parts):  # a section a recipe reads while installing is added to
            part = parts[index]  # the parts (``Options._initialize``): installed too, as
            index += 1  # buildout's loop over the same list does
            saved |= _install_part(buildout, part, options, installed, exists or saved)
            changed = True
        options["buildout"]["parts"] = " ".join(installed)
        if saved:
            buildout._save_installed_options(options)
        elif exists and changed:
            buildout._update_installed(parts=options["buildout"]["parts"])
        if not develop_eggs and not installed and (exists or saved):
            self.remove = True
        # buildout's loops see nothing left; the parts it constructed stay known
        kept = list(parts)
        parts.clear()
        if uninstall_missing:
            buildout._parts = kept


def read_installed_shared(read: Callable[[], Installed]) -> Installed:
    """``installed.cfg`` as buildout's own ``_read_installed_part_options`` (``read``) returns
    it, then with equal values and option names shared: every part of ours has the same
    670-character signature, and a host of 1000 services has 7000 parts (14 MB of copies of the
    same few strings). Each ``Options`` holds the dict it was made from as ``_raw``."""
    options, exists = read()
    shared: dict[str, str] = {}
    for section in options.values():
        raw = section._raw
        compact = {sys.intern(key): shared.setdefault(value, value) for key, value in raw.items()}
        raw.clear()
        raw.update(compact)
    return options, exists


def _reinstall(buildout: Buildout, part: str, old: Options) -> bool:
    """Whether an installed ``part`` in the configuration must be uninstalled first: its
    options changed, or a file it installed is gone (``Buildout.install``'s first loop)."""
    old_options = old.copy()
    installed_files = old_options.pop("__buildout_installed__")
    new_options = buildout.get(part)
    if old_options == new_options:
        if not installed_files:
            return False
        if all(os.path.exists(buildout._buildout_path(f)) for f in installed_files.split("\n")):
            return False
    if buildout._logger.getEffectiveLevel() < logging.DEBUG:
        for key in old_options:
            if key not in new_options:
                buildout._logger.debug("Part %s, dropped option %s.", part, key)
            elif old_options[key] != new_options[key]:
                buildout._logger.debug(
                    "Part %s, option %s changed:\n%r != %r",
                    part,
                    key,
                    new_options[key],
                    old_options[key],
                )
        for key in new_options:
            if key not in old_options:
                buildout._logger.debug("Part %s, new option %s.", part, key)
    return True


def _install_part(
    buildout: Buildout,
    part: str,
    options: dict[str, Options],
    installed: dict[str, None],
    exists: bool,
) -> bool:
    """Install or update one part (``Buildout.install``'s second loop); True when buildout
    would rewrite installed.cfg for it (new files), False when it would append."""
    signature = buildout[part].pop(SIGNATURE)
    saved_options = buildout[part].copy()
    recipe = buildout[part].recipe
    if part in installed:
        __doing__ = UPDATING, part  # noqa: F841 -- buildout's error report reads it
        buildout._logger.info(*__doing__)
        old_installed_files = options[part]["__buildout_installed__"]
        try:
            update = recipe.update
        except AttributeError:
            update = recipe.install
            buildout._logger.warning(
                "The recipe for %s doesn't define an update method. Using its install method.",
                part,
            )
        try:
            files = buildout[part]._call(update)
        except Exception:
            del installed[part]
            buildout._uninstall(old_installed_files)
            if exists:
                buildout._update_installed(parts=" ".join(installed))
            raise
        old_files = old_installed_files.split("\n")
        if files is None:
            files, new = old_files, []
        else:
            files = [files] if isinstance(files, str) else list(files)
            known = set(old_files)
            new = [f for f in files if f not in known]
            if new:
                files = old_files + new
        save = bool(new)
    else:
        __doing__ = INSTALLING, part  # noqa: F841
        buildout._logger.info(*__doing__)
        files = buildout[part]._call(recipe.install)
        if files is None:
            buildout._logger.warning(
                "The %s install returned None.  A path or iterable os paths should be returned.",
                part,
            )
            files = ()
        files = [files] if isinstance(files, str) else list(files)
        save = True
    options[part] = saved_options
    saved_options["__buildout_installed__"] = "\n".join(files)
    saved_options[SIGNATURE] = signature
    installed.pop(part, None)
    installed[part] = None
    _buildout._check_for_unused_options_in_section(buildout, part)
    return save


def defer_installed_writes(buildout: Buildout) -> DeferredInstalled:
    """From now on ``buildout.install`` writes nothing to ``installed.cfg``; ``flush()`` writes
    what it last asked for."""
    return DeferredInstalled(buildout)


#: buildout's options naming the files and directories it keeps: their parents are made first
BUILDOUT_STATE = ("installed", "bin-directory", "parts-directory", "develop-eggs-directory")
#: the directories ``Buildout._setup_directories`` makes, just after the extensions load
SETUP_DIRECTORIES = ("bin-directory", "parts-directory", "develop-eggs-directory")


def note_buildout_directories(
    buildout: Buildout, makedirs: Callable[[str], None], made: Callable[[str], None]
) -> None:
    """The parents of buildout's own state are made by ``makedirs``, and each directory
    ``Buildout._setup_directories`` makes is told to ``made``: a run that fails takes them
    back (core.skeleton). buildout calls it through the instance, so it is replaced there."""
    for key in BUILDOUT_STATE:
        value = buildout["buildout"].get(key)
        if value:
            makedirs(os.path.dirname(os.path.abspath(value)))
    setup = buildout._setup_directories

    def setup_directories() -> None:
        paths = [buildout["buildout"].get(key) for key in SETUP_DIRECTORIES]
        missing = [path for path in paths if path and not os.path.lexists(path)]
        try:
            setup()
        finally:
            for path in missing:
                if os.path.isdir(path):
                    made(path)

    buildout._setup_directories = setup_directories
