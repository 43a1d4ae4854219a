"""Every use of zc.buildout's private API, in one place.

system-recipes needs more of buildout than its documented recipe and extension interfaces:
the raw and annotated configuration (meta-recipe expansion, ``explain``, templates found
beside the profile that set them), the writes of ``installed.cfg`` (deferred until the commit),
recipe loading and part signatures (once per process, not once per part), buildout's log lines
(made truthful) and the frame that read an undecodable file. None of it is buildout's public
API, so all of it is here, behind small named functions, and every assumption each one makes
about the pinned buildout (setup.cfg: ``zc.buildout==6.0.1``) is checked by
tests/test_buildout_api.py, which fails naming the assumption when an upgrade breaks it.

A plain mapping stands in for a buildout in the recipe tests (tests/support/declare.py): the
functions a recipe's construction reaches (``source_of``, ``configured_parts``) accept one.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from collections.abc import Callable

import zc.buildout.buildout as _buildout
import zc.buildout.configparser as _configparser

#: buildout's logger and the lines of it the extension rewrites (extension.TruthfulBuildoutLog)
LOGGER = "zc.buildout"
INSTALLING = "Installing %s."
UPDATING = "Updating %s."
UNINSTALLING = "Uninstalling %s."
RUNNING_UNINSTALL = "Running uninstall recipe."
CREATING_DIRECTORY = "Creating directory %r."
#: the option buildout stores a part's recipe signature in (and pops before installing it)
SIGNATURE = "__buildout_signature__"


# -- the configuration as read -----------------------------------------------------------------
def raw_sections(buildout) -> dict[str, dict[str, str]]:
    """Every section as read, unsubstituted (``Buildout._raw``: section -> option -> text).
    The mapping is buildout's own: a section changed or added here is what ``buildout[name]``
    constructs from, as long as it was not accessed before."""
    return buildout._raw


def raw_section(buildout, name: str) -> dict[str, str] | None:
    """One section as read (buildout's own dict: changes to it are seen), or None."""
    return buildout._raw.get(name)


def section_of(buildout, name: str) -> dict[str, str]:
    """A section known to be there (a configured part, or one an expansion added), as read."""
    return buildout._raw[name]


def set_raw_section(buildout, name: str, options: dict[str, str]) -> None:
    """Add or replace a section before anything accessed it (a meta-recipe's expansion)."""
    buildout._raw[name] = options


#: buildout attribute: section -> option -> source of every value an expansion added. Kept
#: beside ``Buildout._annotated``, not in it: buildout's SectionKey carries a history list per
#: option (12 MB at 1000 service sections), and only ``source_of`` ever reads these
ADDED_SOURCES = "_system_recipes_added_sources"


def annotate(buildout, section: str, option: str, value: str, source: str) -> None:
    """Record where ``[section] option``, added by an expansion, came from: ``source_of``
    answers it unless buildout read the option from a file itself (the profile refined it)."""
    table = getattr(buildout, ADDED_SOURCES, None)
    if table is None:
        table = {}
        setattr(buildout, ADDED_SOURCES, table)
    table.setdefault(section, {})[option] = source


def source_of(buildout, section: str, option: str) -> str | None:
    """Where ``[section] option`` was set (a file, a command line, an annotation), or None."""
    try:
        return buildout._annotated[section][option].source
    except (AttributeError, KeyError):  # not read by buildout, or a plain mapping (tests)
        pass
    return getattr(buildout, ADDED_SOURCES, {}).get(section, {}).get(option)


def substituted(buildout, section: str, raw: dict[str, str], option: str) -> str | None:
    """``option`` of ``raw`` (a section's text) with its ``${...}`` substituted, without
    constructing the section: a throwaway ``Buildout.Options`` that is never initialized (that
    would construct its recipe and add it to the parts)."""
    return buildout.Options(buildout, section, dict(raw)).get(option)


def configured_parts(buildout) -> set[str]:
    """The ``parts`` option, and every section buildout constructed a recipe for
    (``Buildout._parts``: the parts ``buildout install`` installs include those that parts
    depend on through ``${...}``)."""
    names = set(buildout["buildout"].get("parts", "").split())
    return names | set(getattr(buildout, "_parts", ()))  # a plain mapping has none (tests)


def file_being_read(traceback: types.TracebackType | None) -> str | None:
    """The configuration file buildout was reading when ``traceback`` was raised (the
    ``filename`` of the innermost ``_open``, which reads each file and the files it extends)."""
    found = None
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code is _buildout._open.__code__ and "filename" in frame.f_locals:
            found = frame.f_locals["filename"]
        traceback = traceback.tb_next
    return found


# -- installed.cfg ---------------------------------------------------------------------------
class DeferredInstalled:
    """buildout rewrites ``installed.cfg`` after every part it installs and appends the whole
    parts list after every part it updates: O(N^2) in the parts of a host (12 MB after three
    no-op runs of 500 parts). Recipes here only stage their changes until the commit, so the
    file is written once, after the commit, with the last state buildout asked for; a run
    that fails writes none of it.

    ``buildout.install`` calls its writers through the instance (``self._save_installed_options
    (options)`` rewrites the file, ``self._update_installed(**options)`` appends a
    ``[buildout]`` section), so replacing them on the instance defers them."""

    def __init__(self, buildout):
        self.buildout = buildout
        self.save, self.append = buildout._save_installed_options, buildout._update_installed
        self.read = buildout._read_installed_part_options  # -> ({section: options}, exists)
        self.saved = None  # the options buildout last asked to save (it keeps mutating them)
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

    def _defer_save(self, options) -> None:
        self.saved, self.appended = options, {}

    def _defer_append(self, **options) -> None:
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
    def _read_for_install(self):
        options, exists = read_installed_shared(self.buildout, self.read)
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


def read_installed_shared(buildout, read):
    """``installed.cfg`` as buildout's ``_read_installed_part_options`` (``read``) returns it,
    but with equal values shared: every part of ours has the same 670-character signature, and
    a host of 1000 services has 7000 parts (14 MB of copies of the same few strings)."""
    path = buildout["buildout"].get("installed")
    if not path or not os.path.isfile(path):
        return read()
    with open(path) as stream:
        sections = _configparser.parse(stream, path)
    shared: dict[str, str] = {}
    result = {}
    for section, options in sections.items():
        compact = {}
        for option, value in options.items():
            if "%(" in value:
                for escaped, plain in _buildout._spacey_defaults:
                    value = value.replace(escaped, plain)
            compact[sys.intern(option)] = shared.setdefault(value, value)
        result[section] = buildout.Options(buildout, section, compact)
    return result, True


def _reinstall(buildout, part: str, old) -> bool:
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


def _install_part(buildout, part: str, options, installed: dict, exists: bool) -> bool:
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


def defer_installed_writes(buildout) -> DeferredInstalled:
    """From now on ``buildout.install`` writes nothing to ``installed.cfg``; ``flush()`` writes
    what it last asked for."""
    return DeferredInstalled(buildout)


# -- recipe loading and part signatures --------------------------------------------------------
def cache_recipe_loading(spec: str) -> None:
    """Load the entry points of the recipe distribution ``spec`` once per process.

    buildout resolves a recipe's distribution again for every part that uses it
    (``_install_and_load``, a module function: a working-set resolve each time), a fifth of a
    no-op run of a host with hundreds of parts; within one process the answer does not change.
    """
    original = _buildout._install_and_load
    if getattr(original, "system_recipes_cache", None) is not None:
        return
    cache: dict[tuple[str, str, str], object] = {}

    def install_and_load(spec_, group, entry, buildout):
        if spec_ != spec:
            return original(spec_, group, entry, buildout)
        key = (spec_, group, entry)
        if key not in cache:
            cache[key] = original(spec_, group, entry, buildout)
        return cache[key]

    install_and_load.system_recipes_cache = cache  # type: ignore[attr-defined]
    _buildout._install_and_load = install_and_load


def sign_parts_once(buildout, same: Callable[[str], bool]) -> None:
    """Parts for which ``same(part)`` holds share one signature: it is computed for the first
    of them and copied to the rest (buildout signs every part with its recipe's distributions,
    ``_compute_part_signatures``, resolving the working set once per part)."""
    original = buildout._compute_part_signatures

    def compute(parts):
        alike = [p for p in parts if same(p)]
        alike_set = set(alike)  # a list here made signing O(N^2) in the parts
        original([p for p in parts if p not in alike_set] + alike[:1])
        if alike:
            signature = buildout[alike[0]][SIGNATURE]
            for part in alike[1:]:
                buildout[part][SIGNATURE] = signature

    buildout._compute_part_signatures = compute


# -- what the configuration was read from (the converge index) ---------------------------------
def configuration_files(buildout) -> list[str] | None:
    """Every local file the configuration was read from: the sources of the annotated options,
    the files they extend (a file may hold nothing but ``extends``) and the user's defaults
    (``~/.buildout/default.cfg``, present or not). None when a file came from a URL: only the
    full run can tell whether it changed."""
    sources: set[str] = set()
    for options in buildout._annotated.values():
        for key in options.values():
            for item in getattr(key, "history", ()):
                source = str(item.source)
                if "://" in source or "downloaded as" in source:
                    return None
                if os.path.isabs(source):
                    sources.add(source)
    found: set[str] = set()
    pending = sorted(sources)
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.add(path)
        try:
            with open(path) as stream:
                parsed = _configparser.parse(stream, path)
        except (OSError, UnicodeDecodeError, _configparser.Error):
            continue  # read by buildout a moment ago: the sha256 in the index will differ
        section = parsed.get("buildout", {})
        for option in ("extends", "optional-extends"):
            for name in section.get(option, "").split():
                if "://" in name:
                    return None
                pending.append(os.path.join(os.path.dirname(path), os.path.expanduser(name)))
    found.add(_buildout._get_user_config())
    return sorted(found)
