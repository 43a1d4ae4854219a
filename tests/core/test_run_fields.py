"""``Run`` declares all of its fields in ``__init__``: after ``plan`` and after a real buildout
run (the extension loaded in-process), a run has exactly the attributes its ``__init__``
assigns -- nothing added from outside."""

from __future__ import annotations

import ast
import inspect
import logging
import os
import textwrap

import pytest
import zc.buildout.buildout as zb

from system_recipes.core.buildout import api as buildout_api
from system_recipes.core.plan import run
from system_recipes.planning import load_and_plan


def declared_fields() -> set[str]:
    """The ``self.NAME`` that ``Run.__init__`` assigns."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(run.Run.__init__)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


def scratch_root(path) -> str:
    """An install root with just the accounts a root-owned file needs."""
    os.makedirs(path / "etc")
    (path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc/group").write_text("root:x:0:\n")
    os.makedirs(path / "usr/bin")
    (path / "usr/bin/app").write_text("#!/bin/sh\n")
    os.chmod(path / "usr/bin/app", 0o755)  # the service's program, below the root
    return str(path)


def config(tmp_path, body: str, parts: str = "app", extension: bool = False) -> str:
    root = scratch_root(tmp_path / "root")
    path = tmp_path / "buildout.cfg"
    path.write_text(
        textwrap.dedent(f"""
        [buildout]
        {"extensions = system-recipes" if extension else ""}
        parts = {parts}
        eggs-directory = {tmp_path}/eggs
        [system-recipes]
        root = {root}
        layout = debian
        state-directory = /var/lib/system-recipes
        """)
        + body
    )
    return str(path)


APP = """
[app]
recipe = system_recipes:template
path = /etc/app.ini
text = port = 8080
"""


SERVICE = """
[svc]
recipe = system_recipes:service
command = /usr/bin/app
run = sysv
logs =
"""


def test_init_declares_the_fields_the_extension_and_plan_use():
    assert {"expansions", "installed_state", "verbose", "declared", "staged"} <= declared_fields()


def test_a_planned_run_has_only_the_fields_it_declares(tmp_path):
    path = config(tmp_path, APP + SERVICE, parts="app svc")
    active, _ = load_and_plan(path)
    assert list(active.expansions) == ["svc"]
    assert set(vars(active)) == declared_fields()


@pytest.mark.sandbox  # converges into a scratch root: sets owners
def test_an_applied_run_has_only_the_fields_it_declares(tmp_path):
    logger = logging.getLogger(buildout_api.LOGGER)
    level, filters = logger.level, list(logger.filters)
    try:
        buildout = zb.Buildout(config(tmp_path, APP, extension=True), [], use_user_defaults=False)
        buildout.install([])  # loads, installs and unloads the extension: a whole run
    finally:
        logger.setLevel(level)
        logger.filters[:] = filters
    active = run.current(buildout)
    assert os.path.isfile(tmp_path / "root/etc/app.ini")
    assert active.installed_state is not None
    assert set(vars(active)) == declared_fields()
