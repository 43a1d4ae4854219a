"""The floors of system_recipes: a module imports only from its own package and the floors
below it (core -> daemons -> recipes -> meta -> the commands and the extension), lazy imports
inside functions included. fleet and release stand on core beside the recipes. And the tests
have one floor below their modules: no test module imports another (tests/support/ is shared)."""

from __future__ import annotations

import ast
import os

import system_recipes

PACKAGE = os.path.dirname(os.path.abspath(system_recipes.__file__))
#: the floor of each top-level package or module of system_recipes (docs and shipped serve
#: the command line: the option reference, the profiles that ship)
FLOORS = {
    "core": 0,
    "daemons": 1,
    "recipes": 2,
    "release": 2,
    "shipped": 2,
    "meta": 3,
    "extension": 4,
    # load a host configuration and plan it in-process (plan, fleet-host plan, the tests)
    "planning": 4,
    # above meta and planning: compile expands the meta-recipes, the host step plans (lazily)
    "fleet": 5,
    # the reference reads the system model's spec
    "docs": 6,
    # every argparse parser and console entry point (cli, entry, converge); nothing imports it
    "commands": 7,
}


def modules() -> dict[str, str]:
    """Dotted module name (``system_recipes.meta.explain``) -> path."""
    found = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(module: str, path: str) -> set[str]:
    """The system_recipes modules ``module`` imports, anywhere in it."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            )
            target = ".".join(base + ([node.module] if node.module else []))
            # ``from . import run``: the names may be modules
            names.update([target] + [f"{target}.{alias.name}" for alias in node.names])
    return {name for name in names if name.split(".")[0] == "system_recipes"}


def floor_of(module: str) -> tuple[str, int] | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package itself
    return parts[1], FLOORS[parts[1]]


def test_every_part_of_the_package_has_a_floor():
    assert {m.split(".")[1] for m in modules() if "." in m} <= set(FLOORS)


def test_no_import_from_a_lower_floor_to_a_higher_one():
    known = modules()
    upward = []
    for module, path in known.items():
        own = floor_of(module)
        if own is None:
            continue
        for target in imported(module, path):
            other = floor_of(target)
            if other is None or other[0] == own[0] or target not in known:
                continue
            if other[1] >= own[1]:
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_cli_and_explain_do_not_import_each_other():
    known = modules()
    assert not any(
        t.startswith("system_recipes.commands.cli")
        for t in imported("system_recipes.meta.explain", known["system_recipes.meta.explain"])
    )


#: the package databases' own commands: asked and read in daemons/packages.py alone
PACKAGE_QUERIES = ("rpm", "dpkg", "dpkg-query")


def package_queries(path: str) -> list[int]:
    """The lines of ``path`` that run rpm or dpkg: a command list (``["rpm", "-q", ...]``)
    or a shell command (``"dpkg-query -W ..."``) in the code."""
    found = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in PACKAGE_QUERIES:
                found.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.split(" ", 1)[0] in PACKAGE_QUERIES and " -" in node.value:
                found.append(node.lineno)
    return found


def test_only_daemons_packages_asks_rpm_or_dpkg():
    """One reader per fact: fleet's host step (and every other module) asks
    daemons/packages.py what is installed, never rpm or dpkg-query itself."""
    known = modules()
    asking = {module: lines for module, path in known.items() if (lines := package_queries(path))}
    assert set(asking) == {"system_recipes.daemons.packages"}, asking


def test_the_daemons_package_imports_no_daemon_module():
    """Each daemon module registers itself, and daemons/every.py imports them all: a module of
    facts (daemons/packages.py, which fleet's host step reads on every no-op) is read without
    the validators and zc.buildout behind them."""
    path = modules()["system_recipes.daemons"]
    assert imported("system_recipes.daemons", path) == set()


def test_every_daemon_module_that_registers_is_imported_by_every():
    """A validator or reload handler is registered by importing its module: daemons/every.py
    (what the recipes, the extension and the CLI import) names each module that registers."""
    known = modules()
    registering = {
        module
        for module, path in known.items()
        if module.startswith("system_recipes.daemons.")
        and any(
            isinstance(node, ast.Attribute)
            and node.attr == "register"
            and isinstance(node.value, ast.Name)
            and node.value.id in ("validate", "reload")
            for node in ast.walk(ast.parse(open(path).read()))
        )
    }
    every = "system_recipes.daemons.every"
    assert registering and registering <= imported(every, known[every])


TESTS = os.path.dirname(os.path.abspath(__file__))


def modules_of_tests() -> dict[str, str]:
    """Every test module under tests/ (``test_fleet_apply``) -> its path."""
    found = {}
    for directory, _, files in os.walk(TESTS):
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                found[name[:-3]] = os.path.join(directory, name)
    return found


def test_no_test_module_imports_another():
    """What test modules share lives in tests/support/ (fleet_scenarios, live_daemons, ...),
    not in one test module that others import: a test file stays free to change its own
    tests and helpers without breaking another. Lazy imports inside functions are counted."""
    known = modules_of_tests()
    found = []
    for module, path in sorted(known.items()):
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [node.module or ""] + [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if any(part in known for part in target.split(".")):
                    found.append(f"{module} imports {target} (line {node.lineno})")
    assert found == []


def test_only_daemons_nrpe_reads_nrpe_command_lines():
    """One reader per fact: the controller's checks read the host's ``command[NAME]=`` lines
    through daemons/nrpe.py. The exported Ansible action plugin is loaded by Ansible from its
    file and imports nothing of system_recipes, so it keeps its own few lines."""
    readers = sorted(
        module
        for module, path in modules().items()
        if 'startswith("command[")' in open(path).read()
    )
    assert readers == ["system_recipes.fleet.export.ansible_action"]


def test_the_host_step_and_the_controller_speak_only_through_the_protocol():
    """No import between fleet/host/ and fleet/controller/, lazy ones included: what they share
    is declared in fleet/protocol.py."""
    known = modules()
    crossing = [
        f"{module} -> {target}"
        for module, path in known.items()
        for mine, theirs in (("host", "controller"), ("controller", "host"))
        if module.startswith(f"system_recipes.fleet.{mine}.")
        for target in imported(module, path)
        if target.startswith(f"system_recipes.fleet.{theirs}")
    ]
    assert crossing == []


#: top-level class names more than one module defines, on purpose: name -> why
SHARED_CLASS_NAMES = {
    # zc.buildout's convention: each recipe module's class is its entry point
    # (setup.cfg: ``cron = system_recipes.recipes.cron:Recipe``); they subclass the base,
    # core/declare/recipe.Recipe
    "Recipe": "each recipe's buildout entry point, and the base they share",
}

#: basenames more than one module of system_recipes has, on purpose (``__init__.py`` aside):
#: daemons/X.py is what the tool X knows (its files on disk, how they are judged, how it is
#: reloaded), recipes/X.py the buildout recipe writing X's files with it: one tool, two floors
SHARED_BASENAMES = {
    f"{tool}.py": {f"system_recipes/daemons/{tool}.py", f"system_recipes/recipes/{tool}.py"}
    for tool in ("cron", "haproxy", "logrotate", "nagios", "nrpe", "nrpe_server", "supervisor")
}


def top_level_classes() -> dict[str, list[str]]:
    """Class name -> the modules that define it at their top level."""
    found: dict[str, list[str]] = {}
    for module, path in sorted(modules().items()):
        for node in ast.parse(open(path).read()).body:
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(module)
    return found


def test_no_two_modules_define_a_class_of_the_same_name():
    """A name means one thing (issue 22: three Planners, two Settings, two Checks): a class
    name is defined at the top level of one module, but for SHARED_CLASS_NAMES."""
    shared = {name: where for name, where in top_level_classes().items() if len(where) > 1}
    assert set(shared) == set(SHARED_CLASS_NAMES), shared


def test_the_shared_class_names_are_recipes():
    """Every module defining a Recipe is a recipe (its entry point) or the base class."""
    assert all(
        module.startswith(("system_recipes.recipes.", "system_recipes.meta."))
        or module == "system_recipes.core.declare.recipe"
        for module in top_level_classes()["Recipe"]
    )


def test_no_two_modules_share_a_basename():
    """One file name, one job (issue 22: two packages.py, the facts and the host step's
    installs): a basename appears once in system_recipes/, but for ``__init__.py`` and the
    daemons/X.py and recipes/X.py pairs of SHARED_BASENAMES."""
    found: dict[str, set[str]] = {}
    root = os.path.dirname(PACKAGE)
    for path in modules().values():
        name = os.path.basename(path)
        if name != "__init__.py":
            found.setdefault(name, set()).add(os.path.relpath(path, root).replace(os.sep, "/"))
    shared = {name: paths for name, paths in found.items() if len(paths) > 1}
    assert shared == SHARED_BASENAMES


# The rooms of tests/ that are not rooms of system_recipes/: level 3 (the example profiles and
# etc-examples/), the documents, and the benchmarks under bench/.
TEST_ROOMS_BEYOND_THE_PACKAGE = {"profiles", "docs", "bench"}
# What tests the house as a whole stays at the top: its floors, and the scripts/ a machine runs.
TESTS_OF_THE_WHOLE = {"test_floors", "test_scripts"}


def test_tests_mirror_the_package():
    """A test module lives in the folder of the room it tests (tests/fleet/ for
    system_recipes/fleet/, ...), so the tests of one room are found, and run, together."""
    rooms = {
        name
        for name in os.listdir(PACKAGE)
        if os.path.isfile(os.path.join(PACKAGE, name, "__init__.py"))
    }
    misplaced = []
    for module, path in sorted(modules_of_tests().items()):
        folder = os.path.relpath(os.path.dirname(path), TESTS)
        if folder == ".":
            if module not in TESTS_OF_THE_WHOLE:
                misplaced.append(f"{module} at the top of tests/")
        elif folder not in rooms | TEST_ROOMS_BEYOND_THE_PACKAGE:
            misplaced.append(f"{module} in tests/{folder}/, which is no room")
    assert misplaced == []
