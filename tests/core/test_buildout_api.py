"""What system_recipes/core/buildout/api.py (and install.py beside it, its install loop) assumes
about zc.buildout's private API, checked
against the pinned buildout: a real ``Buildout`` loaded from a tiny configuration in a tmp
directory. When an upgrade changes one of these, the test of that function fails naming the
assumption, instead of a run misbehaving somewhere later."""

from __future__ import annotations

import configparser
import importlib.metadata
import inspect
import os
import re
import stat
import textwrap

import pytest
import zc.buildout.buildout as zb
from support.paths import REPO

import system_recipes
from system_recipes.core.buildout import api as buildout_api
from system_recipes.core.buildout import install as buildout_install
from system_recipes.core.plan import run
from system_recipes.recipes import template

SETUP_CFG = os.path.join(REPO, "setup.cfg")


def load(tmp_path, text: str) -> zb.Buildout:
    """A real Buildout of ``text`` (buildout.cfg in ``tmp_path``), touching nothing else."""
    config = tmp_path / "buildout.cfg"
    config.write_text(textwrap.dedent(text))
    options = [
        ("buildout", "eggs-directory", str(tmp_path / "eggs")),
        ("buildout", "log-level", "WARNING"),
    ]
    return zb.Buildout(str(config), options, use_user_defaults=False)


def with_run(tmp_path, parts: str, sections: str = "") -> tuple[zb.Buildout, run.Run]:
    """A Buildout whose template parts can be constructed: a plan-mode run below a root."""
    root = tmp_path / "root"
    root.mkdir()
    buildout = load(
        tmp_path,
        textwrap.dedent(f"""
        [buildout]
        parts = {parts}
        [system-recipes]
        root = {root}
        layout = debian
        """)
        + sections,
    )
    return buildout, run.Run(buildout, mode="plan")


def template_part(name: str, text: str = "hello") -> str:
    return f"\n[{name}]\nrecipe = system_recipes:template\npath = /etc/{name}\ntext = {text}\n"


def code_names(function) -> set[str]:
    """The global and attribute names ``function`` looks up (its bytecode's co_names)."""
    return set(function.__code__.co_names)


def test_the_installed_buildout_is_the_pinned_one():
    """Every test below was written against this version: a new one needs them read again."""
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    pins = [
        line.strip()
        for line in parser["options"]["install_requires"].splitlines()
        if line.strip().startswith("zc.buildout")
    ]
    assert pins == [f"zc.buildout=={importlib.metadata.version('zc.buildout')}"], (
        "zc.buildout changed: check every assumption in system_recipes/core/buildout/api.py"
    )


# -- the configuration as read ------------------------------------------------------------------
def test_raw_sections_are_dicts_of_unsubstituted_text(tmp_path):
    buildout = load(
        tmp_path,
        """
        [buildout]
        parts =
        [app]
        greeting = hello ${other:name}
        [other]
        name = world
        """,
    )
    raw = buildout_api.raw_sections(buildout)
    assert raw is buildout._raw, "Buildout._raw is gone"
    assert isinstance(raw, dict) and all(isinstance(s, dict) for s in raw.values())
    assert raw["app"] == {"greeting": "hello ${other:name}"}, "_raw no longer holds the text read"
    assert buildout_api.raw_section(buildout, "app") is raw["app"]
    assert buildout_api.raw_section(buildout, "missing") is None


def test_a_section_set_raw_before_access_is_what_buildout_constructs(tmp_path):
    buildout = load(tmp_path, "[buildout]\nparts =\n[other]\nname = world\n")
    buildout_api.set_raw_section(buildout, "added", {"greeting": "hello ${other:name}"})
    assert "added" in buildout, "Buildout no longer lists its sections from _raw"
    assert buildout["added"]["greeting"] == "hello world", (
        "Buildout.__getitem__ no longer constructs a section from _raw"
    )
    # changing the raw dict of a section not yet accessed (expand writes exposed options)
    buildout_api.raw_section(buildout, "other")["extra"] = "more"
    assert buildout["other"]["extra"] == "more"


def test_every_value_read_is_annotated_with_its_file(tmp_path):
    buildout = load(tmp_path, "[buildout]\nparts =\n[app]\ngreeting = hello\n")
    config = str(tmp_path / "buildout.cfg")
    key = buildout._annotated["app"]["greeting"]
    assert isinstance(key, zb.SectionKey) and key.value == "hello"
    assert buildout_api.source_of(buildout, "app", "greeting") == config, (
        "_annotated values no longer carry the file they were read from in .source"
    )
    assert buildout_api.source_of(buildout, "app", "missing") is None
    assert buildout_api.source_of(buildout, "missing", "greeting") is None
    assert buildout_api.source_of({"app": {}}, "app", "greeting") is None  # a plain mapping


def test_annotate_records_a_source_beside_buildouts_own(tmp_path):
    buildout = load(tmp_path, "[buildout]\nparts =\n[app]\ngreeting = hello\n")
    buildout_api.set_raw_section(buildout, "made", {"option": "value"})
    buildout_api.annotate(buildout, "made", "option", "value", "system_recipes:service [x]")
    assert buildout_api.source_of(buildout, "made", "option") == "system_recipes:service [x]"
    buildout_api.annotate(buildout, "made", "option", "other", "elsewhere")
    assert buildout_api.source_of(buildout, "made", "option") == "elsewhere"
    assert "made" not in buildout._annotated  # buildout's own table (buildout annotate) as read
    # a value buildout read from a file keeps its file (a profile's refinement of a section)
    buildout_api.annotate(buildout, "app", "greeting", "hello", "system_recipes:service [x]")
    assert buildout_api.source_of(buildout, "app", "greeting") == str(tmp_path / "buildout.cfg")


def test_substituted_reads_one_option_without_constructing_the_section(tmp_path):
    assert zb.Buildout.Options is zb.Options
    assert list(inspect.signature(zb.Options).parameters) == ["buildout", "section", "data"], (
        "Buildout.Options(buildout, section, data) changed"
    )
    loaded = load(
        tmp_path,
        """
        [buildout]
        parts =
        [other]
        name = world
        [app]
        recipe = system_recipes:template
        greeting = hello ${other:name}
        """,
    )
    raw = buildout_api.raw_section(loaded, "app")
    assert buildout_api.substituted(loaded, "app", raw, "greeting") == "hello world"
    assert buildout_api.substituted(loaded, "app", raw, "missing") is None
    # its recipe was not constructed (that needs a run): nothing became a part
    assert loaded._parts == [] and "app" not in loaded._data
    assert raw["greeting"] == "hello ${other:name}"  # the raw text is left as it was


def test_configured_parts_include_the_parts_buildout_constructed(tmp_path):
    buildout, _ = with_run(
        tmp_path, "app", template_part("app", "${dependency:path}") + template_part("dependency")
    )
    assert buildout._parts == [], "Buildout._parts no longer starts empty"
    assert buildout_api.configured_parts(buildout) == {"app"}
    buildout["app"]  # constructing it constructs the section it refers to
    assert buildout._parts == ["dependency", "app"], (
        "Options._initialize no longer appends each section with a recipe to Buildout._parts"
    )
    assert buildout_api.configured_parts(buildout) == {"app", "dependency"}
    assert buildout_api.configured_parts({"buildout": {"parts": "a b"}}) == {"a", "b"}


def test_file_being_read_is_the_innermost_file_open_read(tmp_path):
    assert "filename" in inspect.signature(zb._open).parameters, "buildout's _open changed"
    base = tmp_path / "base.cfg"
    base.write_bytes(b"[buildout]\nparts =\n# caf\xe9\n")
    config = tmp_path / "host.cfg"
    config.write_text(f"[buildout]\nextends = {base}\n")
    with pytest.raises(UnicodeDecodeError) as raised:
        zb.Buildout(
            str(config), [("buildout", "eggs-directory", str(tmp_path))], use_user_defaults=False
        )
    assert buildout_api.file_being_read(raised.value.__traceback__) == str(base), (
        "an undecodable file is no longer read inside _open(filename=...)"
    )
    assert buildout_api.file_being_read(None) is None


# -- installed.cfg --------------------------------------------------------------------------------
def test_buildout_writes_installed_cfg_through_these_methods(tmp_path):
    buildout = load(tmp_path, "[buildout]\nparts =\n")
    path = buildout["buildout"]["installed"]
    assert path == str(tmp_path / ".installed.cfg")
    # install() calls them on self, so replacing them on the instance defers them
    assert {
        "_save_installed_options",
        "_update_installed",
        "_read_installed_part_options",
    } <= code_names(zb.Buildout.install), "Buildout.install no longer writes through these"
    assert list(inspect.signature(zb.Buildout._save_installed_options).parameters) == [
        "self",
        "installed_options",
    ]
    assert list(inspect.signature(zb.Buildout._read_installed_part_options).parameters) == ["self"]
    assert (
        inspect.signature(zb.Buildout._update_installed).parameters["buildout_options"].kind
        is inspect.Parameter.VAR_KEYWORD
    )
    # save rewrites the whole file; update appends a [buildout] section; read merges them
    buildout._save_installed_options({"buildout": {"parts": "a"}, "a": {"key": "value"}})
    written = open(path).read()
    assert "[buildout]\nparts = a\n" in written and "[a]\nkey = value\n" in written
    buildout._update_installed(parts="a b")
    appended = open(path).read()
    assert appended.startswith(written) and appended.endswith("\n[buildout]\nparts = a b\n"), (
        "_update_installed no longer appends"
    )
    options, exists = buildout._read_installed_part_options()
    assert exists is True
    assert options["buildout"]["parts"] == "a b" and options["a"]["key"] == "value"


def test_buildouts_own_directories_are_made_through_setup_directories(tmp_path):
    """install() makes bin, parts and develop-eggs through ``self._setup_directories()``
    after the extensions load: replaced on the instance, each one made is noted (a run that
    fails takes them back)."""
    assert "_setup_directories" in code_names(zb.Buildout.install)
    buildout = load(tmp_path, "[buildout]\nparts =\n")
    made: list[str] = []
    parents: list[str] = []
    buildout_install.note_buildout_directories(buildout, parents.append, made.append)
    assert os.path.join(str(tmp_path), "bin") not in made and str(tmp_path) in parents
    buildout._setup_directories()
    assert sorted(made) == sorted(
        buildout["buildout"][f"{name}-directory"] for name in ("bin", "parts", "develop-eggs")
    )
    assert all(os.path.isdir(path) for path in made)
    made.clear()
    buildout._setup_directories()
    assert made == []  # there already: not this run's


def test_installed_cfg_is_read_by_buildout_with_equal_values_shared(tmp_path):
    buildout = load(tmp_path, "[buildout]\nparts =\n")
    data = {"key": "value"}
    assert buildout.Options(buildout, "a", data)._raw is data, "Options no longer keeps its dict"
    signature = "system-recipes-" + "0" * 600
    buildout._save_installed_options(
        {
            "buildout": {"parts": "a b"},
            "a": {"__buildout_signature__": signature, "key": "one"},
            "b": {"__buildout_signature__": signature, "key": "two"},
        }
    )
    options, exists = buildout_install.read_installed_shared(buildout._read_installed_part_options)
    assert exists is True and options["buildout"]["parts"] == "a b"
    assert (options["a"]["key"], options["b"]["key"]) == ("one", "two")
    first, second = (options[p]._raw["__buildout_signature__"] for p in "ab")
    assert first == signature and first is second  # one string, not one per part


def test_deferred_installed_writes_write_once_at_flush(tmp_path):
    buildout = load(tmp_path, "[buildout]\nparts =\n")
    path = buildout["buildout"]["installed"]
    deferred = buildout_install.defer_installed_writes(buildout)
    saved = {"buildout": {"parts": "a"}, "a": {"key": "value"}}
    buildout._save_installed_options(saved)
    buildout._update_installed(parts="a")
    assert not os.path.exists(path), "a deferred write reached installed.cfg"
    saved["a"]["key"] = "changed"  # buildout keeps mutating what it asked to save
    deferred.flush()
    text = open(path).read()
    assert "key = changed" in text and text.count("[buildout]") == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it holds secrets
    # a run that only updated: the appended parts are folded into a compact rewrite
    again = load(tmp_path, "[buildout]\nparts =\n")
    deferred = buildout_install.defer_installed_writes(again)
    again._update_installed(parts="a")
    again._update_installed(parts="a")
    deferred.flush()
    assert open(path).read().count("[buildout]") == 1


# -- recipe loading and part signatures ---------------------------------------------------------
def test_recipe_loading_is_cached_per_process(tmp_path, monkeypatch):
    original = zb._install_and_load
    monkeypatch.setattr(zb, "_install_and_load", original)  # restored after the test
    assert list(inspect.signature(original).parameters) == ["spec", "group", "entry", "buildout"]
    # recipes (Options.initialize) and uninstallers (Buildout._uninstall_part) are loaded through
    # the module's global, so replacing it there takes effect
    for caller in (zb.Options.initialize, zb.Buildout._uninstall_part):
        assert "_install_and_load" in code_names(caller) and caller.__globals__ is vars(zb), (
            f"{caller.__qualname__} no longer loads recipes through _install_and_load"
        )
    buildout = load(tmp_path, "[buildout]\nparts =\n")
    assert original("system_recipes", "zc.buildout", "template", buildout) is template.Recipe
    buildout_api.cache_recipe_loading("system_recipes")
    cached = zb._install_and_load
    assert cached is not original
    first = cached("system_recipes", "zc.buildout", "template", buildout)
    assert first is template.Recipe
    assert cached.system_recipes_cache == {("system_recipes", "zc.buildout", "template"): first}
    buildout_api.cache_recipe_loading("system_recipes")  # once: not wrapped twice
    assert zb._install_and_load is cached


def test_parts_of_one_distribution_are_signed_once(tmp_path):
    assert "_compute_part_signatures" in code_names(zb.Buildout.install)
    assert buildout_api.SIGNATURE in zb.Buildout.install.__code__.co_consts, (
        "Buildout.install no longer takes the signature from __buildout_signature__"
    )
    assert list(inspect.signature(zb.Buildout._compute_part_signatures).parameters) == [
        "self",
        "parts",
    ]
    buildout, _ = with_run(tmp_path, "a b", template_part("a") + template_part("b"))
    buildout["a"], buildout["b"]  # noqa: B018 -- constructs them, as install() does first
    buildout._compute_part_signatures(["a"])
    signature = buildout["a"][buildout_api.SIGNATURE]
    assert "system_recipes" in signature.replace("-", "_"), signature
    assert buildout_api.SIGNATURE not in buildout["b"]
    buildout_api.sign_parts_once(buildout, lambda part: part in ("a", "b"))
    buildout._compute_part_signatures(["b", "a"])
    assert (
        buildout["a"][buildout_api.SIGNATURE] == buildout["b"][buildout_api.SIGNATURE] == signature
    )


# -- buildout's log lines -------------------------------------------------------------------------
def test_the_log_lines_the_extension_rewrites_are_buildouts(tmp_path):
    buildout = load(tmp_path, "[buildout]\nparts =\n")
    assert buildout._logger.name == buildout_api.LOGGER
    said = {
        zb.Buildout.install: (buildout_api.INSTALLING, buildout_api.UPDATING),
        zb.Buildout._uninstall_part: (buildout_api.UNINSTALLING, buildout_api.RUNNING_UNINSTALL),
        zb.Buildout._setup_directories: (buildout_api.CREATING_DIRECTORY,),
    }
    for function, messages in said.items():
        for message in messages:
            assert message in function.__code__.co_consts, (
                f"{function.__qualname__} no longer logs {message!r}"
            )


def test_the_module_is_the_only_user_of_the_private_api():
    """Outside core/buildout/api.py and core/buildout/install.py no module of system_recipes
    reaches into buildout: no ``_name`` of a buildout object or of zc.buildout.buildout, no
    SectionKey or Options."""
    private = re.compile(
        r"buildout\w*\._[a-z]|getattr\([\w.]*buildout\w*, \"_[a-z]"
        r"|import _[a-z]|\"_open\"|SectionKey|\.Options\("
    )
    package = os.path.dirname(os.path.abspath(system_recipes.__file__))  # all of it
    offenders = []
    for directory, _, files in os.walk(package):
        for name in files:
            path = os.path.join(directory, name)
            if name.endswith(".py") and path not in (
                buildout_api.__file__,
                buildout_install.__file__,
            ):
                offenders += [
                    f"{os.path.relpath(path, package)}: {found.group(0)}"
                    for found in private.finditer(open(path).read())
                ]
    assert offenders == []
