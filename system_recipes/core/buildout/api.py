"""Every use of zc.buildout's private API, in one place.

system-recipes needs more of buildout than its documented recipe and extension interfaces:
the raw and annotated configuration (meta-recipe expansion, ``explain``, templates found
beside the profile that set them), the writes of ``installed.cfg`` (deferred until the commit),
recipe loading and part signatures (once per process, not once per part), buildout's log lines
(made truthful) and the frame that read an undecodable file. None of it is buildout's public
API, so all of it is here, behind small named functions -- except the deferred writes of
``installed.cfg`` and the install loop that goes with them, which are in
:mod:`.buildout_install` -- and every assumption each one makes about the pinned buildout
(setup.cfg: ``zc.buildout==6.0.1``) is checked by tests/core/test_buildout_api.py, which fails
naming the assumption when an upgrade breaks it.

A plain mapping stands in for a buildout in the recipe tests (tests/support/declare.py): the
functions a recipe's construction reaches (``source_of``, ``configured_parts``) accept one.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zc.buildout.buildout as _buildout
import zc.buildout.configparser as _configparser

from system_recipes.core.buildout.reading import (
    READING_ERRORS,
    ConfigFileError,
    check_readable,
    reading_problem,
)
from system_recipes.core.declare.errors import NamedError

if TYPE_CHECKING:
    # zc.buildout has no annotations: mypy takes a Buildout for what it is (a plain mapping
    # stands in for one in the recipe tests)
    from zc.buildout.buildout import Buildout

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
def raw_sections(buildout: Buildout) -> dict[str, dict[str, str]]:
    """Every section as read, unsubstituted (``Buildout._raw``: section -> option -> text).
    The mapping is buildout's own: a section changed or added here is what ``buildout[name]``
    constructs from, as long as it was not accessed before."""
    return buildout._raw


def raw_section(buildout: Buildout, name: str) -> dict[str, str] | None:
    """One section as read (buildout's own dict: changes to it are seen), or None."""
    return buildout._raw.get(name)


def section_of(buildout: Buildout, name: str) -> dict[str, str]:
    """A section known to be there (a configured part, or one an expansion added), as read."""
    return buildout._raw[name]


def set_raw_section(buildout: Buildout, name: str, options: dict[str, str]) -> None:
    """Add or replace a section before anything accessed it (a meta-recipe's expansion)."""
    buildout._raw[name] = options


#: buildout attribute: section -> option -> source of every value an expansion added. Kept
#: beside ``Buildout._annotated``, not in it: buildout's SectionKey carries a history list per
#: option (12 MB at 1000 service sections), and only ``source_of`` ever reads these
ADDED_SOURCES = "_system_recipes_added_sources"


def annotate(buildout: Buildout, section: str, option: str, value: str, source: str) -> None:
    """Record where ``[section] option``, added by an expansion, came from: ``source_of``
    answers it unless buildout read the option from a file itself (the profile refined it)."""
    table = getattr(buildout, ADDED_SOURCES, None)
    if table is None:
        table = {}
        setattr(buildout, ADDED_SOURCES, table)
    table.setdefault(section, {})[option] = source


def source_of(buildout: Buildout, section: str, option: str) -> str | None:
    """Where ``[section] option`` was set (a file, a command line, an annotation), or None."""
    try:
        return buildout._annotated[section][option].source
    except (AttributeError, KeyError):  # not read by buildout, or a plain mapping (tests)
        pass
    return getattr(buildout, ADDED_SOURCES, {}).get(section, {}).get(option)


def substituted(buildout: Buildout, section: str, raw: dict[str, str], option: str) -> str | None:
    """``option`` of ``raw`` (a section's text) with its ``${...}`` substituted, without
    constructing the section: a throwaway ``Buildout.Options`` that is never initialized (that
    would construct its recipe and add it to the parts)."""
    return buildout.Options(buildout, section, dict(raw)).get(option)


def configured_parts(buildout: Buildout) -> set[str]:
    """The ``parts`` option, and every section buildout constructed a recipe for
    (``Buildout._parts``: the parts ``buildout install`` installs include those that parts
    depend on through ``${...}``)."""
    names = set(buildout["buildout"].get("parts", "").split())
    return names | set(getattr(buildout, "_parts", ()))  # a plain mapping has none (tests)


def constructed_sections(buildout: Buildout) -> set[str] | None:
    """The sections buildout built (``Buildout._data``): the parts, what they refer to with
    ``${...}``, the settings read through ``buildout[name]``. None for a plain mapping (tests)."""
    data = getattr(buildout, "_data", None)
    return None if data is None else set(data)


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


# -- buildout's reading of its files, and its command line's errors ---------------------------
class ReadingBuildout(_buildout.Buildout):
    """buildout, whose reading of a configuration file it cannot read (syntax, encoding, missing,
    a directory, an ``extends`` included) ends in one line (:mod:`.reading`), not a traceback."""

    def __init__(self, config_file: str, *args: Any, **kwargs: Any) -> None:
        check_readable(config_file)
        try:
            super().__init__(config_file, *args, **kwargs)
        except READING_ERRORS as error:
            being_read = file_being_read(error.__traceback__)
            if isinstance(error, OSError) and being_read is None:
                raise  # not a configuration file: buildout's own directories
            raise ConfigFileError(reading_problem(error, being_read, config_file)) from None


def quiet_context_for_named_errors() -> None:
    """buildout's ``main`` prints the ``__doing__`` of every frame of a failure (``While:
    Installing web.``) before its ``Error:`` line (``_doing``, a module function looked up as
    ``main`` handles the error). A :class:`.NamedError` names its own place; buildout's context
    is noise beside it, and names the wrong part when one part's construction reads another's
    options: leave it out for those, keep it for the rest."""
    original = _buildout._doing
    if getattr(original, "system_recipes_quiet", False):
        return

    def doing() -> None:
        if not isinstance(sys.exc_info()[1], NamedError):
            original()

    doing.system_recipes_quiet = True  # type: ignore[attr-defined]
    _buildout._doing = doing


def run_main(arguments: list[str]) -> None:
    """buildout's own ``main(arguments)``, as ``converge`` runs it: every configuration file is
    read by :class:`ReadingBuildout`, and our errors print without context."""
    quiet_context_for_named_errors()
    original = _buildout.Buildout
    _buildout.Buildout = ReadingBuildout  # main constructs ``Buildout`` by its module's name
    try:
        _buildout.main(arguments)
    finally:
        _buildout.Buildout = original


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

    def install_and_load(spec_: str, group: str, entry: str, buildout: Buildout) -> object:
        if spec_ != spec:
            return original(spec_, group, entry, buildout)
        key = (spec_, group, entry)
        if key not in cache:
            cache[key] = original(spec_, group, entry, buildout)
        return cache[key]

    install_and_load.system_recipes_cache = cache  # type: ignore[attr-defined]
    _buildout._install_and_load = install_and_load


def sign_parts_once(buildout: Buildout, same: Callable[[str], bool]) -> None:
    """Parts for which ``same(part)`` holds share one signature: it is computed for the first
    of them and copied to the rest (buildout signs every part with its recipe's distributions,
    ``_compute_part_signatures``, resolving the working set once per part)."""
    original = buildout._compute_part_signatures

    def compute(parts: list[str]) -> None:
        alike = [p for p in parts if same(p)]
        alike_set = set(alike)  # a list here made signing O(N^2) in the parts
        original([p for p in parts if p not in alike_set] + alike[:1])
        if alike:
            signature = buildout[alike[0]][SIGNATURE]
            for part in alike[1:]:
                buildout[part][SIGNATURE] = signature

    buildout._compute_part_signatures = compute


# -- what the configuration was read from (the converge index) ---------------------------------
def configuration_files(buildout: Buildout) -> list[str] | None:
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
