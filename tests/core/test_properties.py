"""Property tests: random option values give a clean error or output the tools accept."""

from __future__ import annotations

import os

import zc.buildout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.host import make_scratch_root
from support.paths import BASE_CFG

from system_recipes.planning import load_and_plan

# values embedded in a .cfg file: "\n" becomes a continuation line; other line breaks would
# make the file itself unparsable, which is buildout's business, not the recipe's
TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_categories=["Cs"],
        exclude_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    ),
    max_size=30,
)
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def cfg_value(value: str) -> str:
    """A value as a buildout file carries it (continuation lines indented)."""
    return value.replace("\n", "\n    ")


def plan_or_error(tmp_path, body: str):
    root = make_scratch_root(str(tmp_path / "root"))
    config = tmp_path / "host.cfg"
    config.write_text(f"[buildout]\nextends = {BASE_CFG}\n[system-recipes]\nroot = {root}\n" + body)
    try:
        return load_and_plan(str(config))[1], None
    except zc.buildout.UserError as error:
        return None, str(error)


@SETTINGS
@given(name=TEXT, user=TEXT, mode=TEXT)
def test_deployment_random_values(tmp_path_factory, name, user, mode):
    tmp_path = tmp_path_factory.mktemp("deployment")
    plan, error = plan_or_error(
        tmp_path,
        (
            f"[buildout]\nparts = app\n[app]\nrecipe = system_recipes:deployment\n"
            f"name = {cfg_value(name)}\nuser = {cfg_value(user)}\nlog-mode = {cfg_value(mode)}\n"
        ),
    )
    if error is not None:
        assert error.startswith("[app] ") or "[app]" in error or error.startswith("The ")
        assert "Traceback" not in error
    else:
        for action in plan.actions:
            if action.directory is not None:
                assert os.path.isabs(action.path) and ".." not in action.path.split("/")
                assert "\n" not in action.path


@SETTINGS
@given(text=TEXT, value=TEXT, path=TEXT)
def test_template_random_values(tmp_path_factory, text, value, path):
    tmp_path = tmp_path_factory.mktemp("template")
    plan, error = plan_or_error(
        tmp_path,
        (
            f"[buildout]\nparts = t\n[t]\nrecipe = system_recipes:template\n"
            f"path = /etc/{cfg_value(path)}\ntext = {cfg_value(text)} {{{{ value }}}}\n"
            f"value = {cfg_value(value)}\n"
        ),
    )
    if error is not None:
        assert "Traceback" not in error
    else:
        (action,) = [a for a in plan.actions if a.file is not None]
        assert action.path.startswith("/etc/") and ".." not in action.path.split("/")
        assert action.file.content.endswith(b"\n")
