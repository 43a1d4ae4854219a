"""Template parts: secrets stay secret in `explain`, an option the template never reads is a
mistake, a template that fails while it renders is one line; unknown recipes and options get a
"did you mean". Real buildout and jinja2, scratch roots."""

from __future__ import annotations

import os
import subprocess

import pytest
from support.paths import BUILDOUT, SYSTEM_RECIPES
from support.results import ok, one_error_line

HOST = """
[buildout]
extends = {base}
parts = %(parts)s

[system-recipes]
root = {root}
%(body)s
"""

SECRET_SERVICE = """
[web]
recipe = system_recipes:service
command = /bin/sleep 1000
config = web.ini.j2

[web-config]
secret = %(secret)s
port = 8080
password = hunter2
dsn = postgres://web:${web-config:password}@db/web

[web-supervisor]
environment = DSN=${web-config:dsn}
"""

WEB_TEMPLATE = "[web]\nport = {{ port }}\npassword = {{ password }}\ndsn = {{ dsn }}\n"


def write(scratch, body: str, parts: str, templates: dict[str, str] | None = None) -> str:
    os.makedirs(os.path.join(scratch.directory, "templates"), exist_ok=True)
    for name, text in (templates or {}).items():
        with open(os.path.join(scratch.directory, "templates", name), "w") as stream:
            stream.write(text)
    return scratch.write(HOST % {"parts": parts, "body": body})


def run(scratch, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SYSTEM_RECIPES, *args], capture_output=True, text=True, cwd=scratch.directory, timeout=300
    )


# -- secrets in explain ------------------------------------------------------------------------


def test_explain_masks_every_template_variable_of_a_secret_section(scratch):
    write(scratch, SECRET_SERVICE % {"secret": "true"}, "web", {"web.ini.j2": WEB_TEMPLATE})
    text = ok(run(scratch, "explain", "-c", "host.cfg", "web")).stdout
    assert "hunter2" not in text and "8080" not in text
    assert "password = (secret: value not shown)" in text
    assert "dsn = (secret: value not shown)" in text  # made from the password
    # another generated section whose value is taken from a secret one
    assert "environment = (secret: value not shown)" in text
    # the recipe's own options are not the file's content: shown
    assert "secret = true" in text and "mode = 0640" in text and "template = web.ini.j2" in text


def test_explain_shows_the_values_of_a_section_that_is_not_secret(scratch):
    write(scratch, SECRET_SERVICE % {"secret": "false"}, "web", {"web.ini.j2": WEB_TEMPLATE})
    text = ok(run(scratch, "explain", "-c", "host.cfg", "web")).stdout
    assert "password = hunter2" in text and "environment = DSN=${web-config:dsn}" in text
    assert "(secret" not in text


def test_explain_masks_inline_text_and_a_secret_flag_given_by_reference(scratch):
    body = SECRET_SERVICE.replace("config = web.ini.j2", "config = web.ini.j2\nprivate = true") % {
        "secret": "${web:private}"
    }
    write(scratch, body, "web", {"web.ini.j2": WEB_TEMPLATE})
    text = run(scratch, "explain", "-c", "host.cfg", "web").stdout
    assert "hunter2" not in text and "password = (secret: value not shown)" in text


# -- options the template never reads ------------------------------------------------------------

APP = """
[app-config]
recipe = system_recipes:template
path = /etc/app/app.ini
template = app.ini.j2
password = hunter2
%(extra)s
"""


@pytest.mark.parametrize(
    "extra, template, message",
    [
        (
            "secrte = true",
            "password = {{ password }}\n",
            "[app-config] secrte: not used by the template (did you mean 'secret'?)",
        ),
        (
            "mdoe = 0600",
            "password = {{ password }}\n",
            "[app-config] mdoe: not used by the template (did you mean 'mode'?)",
        ),
        (
            "pasword2 = x",
            "password = {{ password }}\nb = {{ password2 }}\n",
            "[app-config] pasword2: not used by the template (did you mean 'password2'?)",
        ),
        (
            "colour = blue",
            "password = {{ password }}\n",
            "[app-config] colour: not used by the template (expected an option of the recipe or a "
            "variable app.ini.j2 uses: password)",
        ),
    ],
)
def test_an_option_the_template_never_reads_is_an_error(scratch, extra, template, message):
    write(scratch, APP % {"extra": extra}, "app-config", {"app.ini.j2": template})
    for result in (
        run(scratch, "plan", "-c", "host.cfg"),
        subprocess.run(
            [BUILDOUT, "-c", "host.cfg"], capture_output=True, text=True, cwd=scratch.directory
        ),
    ):
        assert one_error_line(result) == "Error: " + message
        assert "hunter2" not in result.stdout + result.stderr
    assert not os.path.exists(os.path.join(scratch.root, "etc/app/app.ini"))


@pytest.mark.parametrize(
    "extra, template",
    [
        # dash or underscore spelling
        ("log-directory = /var/log/app", "{{ password }} {{ log_directory }}\n"),
        ("log_level = info", "{{ password }} {{ log_level }}\n"),
        # read in an included, imported or extended template
        ("port = 1", "{% include 'part.j2' %}{{ password }}\n"),
        ("port = 1", "{% extends 'base.j2' %}{% block body %}{{ password }}{% endblock %}"),
        ("port = 1", "{% import 'macros.j2' as m with context %}{{ m.show() }}{{ password }}\n"),
        # read through sections: by name, whole, or by a computed name
        ("port = 1", "{{ sections['app-config'].port }}{{ sections.app_config.password }}\n"),
        ("port = 1", "{% for k, v in sections.app_config.items() %}{{ k }}{% endfor %}\n"),
        ("port = 1\nme = app-config", "{{ sections[me].port }}{{ password }}\n"),
        # tested only for being defined
        ("port = 1", "{% if port is defined %}x{% endif %}{{ password }}\n"),
    ],
)
def test_options_the_template_reads_are_accepted(scratch, extra, template):
    write(
        scratch,
        APP % {"extra": extra + "\nsecret = true"},  # a password: the part is secret
        "app-config",
        {
            "app.ini.j2": template,
            "part.j2": "port = {{ port }}\n",
            "base.j2": "{{ port }}{% block body %}{% endblock %}\n",
            "macros.j2": "{% macro show() %}{{ port }}{% endmacro %}",
        },
    )
    result = run(scratch, "plan", "-c", "host.cfg")
    assert result.returncode == 2, result.stdout + result.stderr


def test_inline_text_is_checked_too(scratch):
    body = APP.replace("template = app.ini.j2", "text = password = {{ password }}")
    write(scratch, body % {"extra": "secrte = true"}, "app-config")
    assert (
        one_error_line(run(scratch, "plan", "-c", "host.cfg"))
        == "Error: [app-config] secrte: not used by the template (did you mean 'secret'?)"
    )


# -- templates that fail while they render --------------------------------------------------------


@pytest.mark.parametrize(
    "template, error",
    [
        (
            "a\n{% for i in range(workers) %}{{ i }}{% endfor %}\n",
            "TypeError: 'str' object cannot be interpreted as an integer (app.ini.j2 line 2)",
        ),
        (
            "x = {{ 1 / (workers | int) }}\n",
            "ZeroDivisionError: division by zero (app.ini.j2 line 1)",
        ),
        (
            "\n\nx = {{ '%d' % workers }}\n",
            "TypeError: %d format: a real number is required, not str (app.ini.j2 line 3)",
        ),
        (
            "x = {{ workers | round }}\n",
            "TypeError: type str doesn't define __round__ method (app.ini.j2 line 1)",
        ),
        (
            "\nx = {{ workers | dictsort }}\n",
            "AttributeError: 'str' object has no attribute 'items' (app.ini.j2 line 2)",
        ),
        ("x = {{ workers.nope.deeper }}\n", "has no attribute 'nope' (app.ini.j2 line 1)"),
        (
            "x = {{ workers | center(workers) }}\n",
            "TypeError: 'str' object cannot be interpreted as an integer (app.ini.j2 line 1)",
        ),
        ("{% include 'inner.j2' %}\n", "(inner.j2 line 2)"),
        ("{{ workers }}\n{{ raise_here() }}\n", "'raise_here' is undefined (app.ini.j2 line 2)"),
    ],
)
def test_a_template_that_fails_while_rendering_is_one_line(scratch, template, error):
    body = APP % {"extra": "workers = four"}
    body = body.replace("password = hunter2\n", "")
    write(
        scratch,
        body,
        "app-config",
        {"app.ini.j2": template, "inner.j2": "ok\n{{ range(workers) }}\n"},
    )
    for result in (
        run(scratch, "plan", "-c", "host.cfg"),
        subprocess.run(
            [BUILDOUT, "-c", "host.cfg"], capture_output=True, text=True, cwd=scratch.directory
        ),
    ):
        line = one_error_line(result)
        assert line.startswith("Error: [app-config] template: "), line
        assert error in line, line


# -- options named like a secret -------------------------------------------------------------------

LEAKY = """
[web-config]
recipe = system_recipes:template
path = /etc/web/web.ini
text = {{ port }} %(uses)s
port = 8080
%(extra)s
"""


@pytest.mark.parametrize(
    "option, value",
    [
        ("password", "hunter2"),
        ("db-password", "hunter2"),
        ("api_token", "hunter2"),
        ("api-key", "hunter2"),
        ("client-secret", "hunter2"),
        ("private_key", "hunter2"),
        ("passphrase", "hunter2"),
    ],
)
def test_an_option_named_like_a_secret_needs_secret_true(scratch, option, value):
    """As at level 4 (a setting named like a secret is refused unless it is a reference): the
    diff would show the value in clear."""
    uses = "{{ " + option.replace("-", "_") + " }}"
    write(scratch, LEAKY % {"uses": uses, "extra": f"{option} = {value}"}, "web-config")
    for result in (
        run(scratch, "plan", "-c", "host.cfg"),
        subprocess.run(
            [BUILDOUT, "-c", "host.cfg"], capture_output=True, text=True, cwd=scratch.directory
        ),
    ):
        assert one_error_line(result) == (
            f"Error: [web-config] {option}: looks like a secret (expected secret = true on the "
            "part, or a reference file:/PATH)"
        )
        assert value not in result.stdout + result.stderr
    assert not os.path.exists(os.path.join(scratch.root, "etc/web/web.ini"))


@pytest.mark.parametrize(
    "extra",
    [
        "password = hunter2\nsecret = true",  # masked
        "password = file:/etc/web/db-password",  # where it is, not what it is
        "password =",  # none at all
        "password-file = /etc/web/db-password",  # names a file
        "token-length = 32",
        "passing = yes",  # not a secret's name
    ],
)
def test_a_secret_part_a_reference_or_a_name_that_is_no_secret_is_accepted(scratch, extra):
    option = extra.split(" =")[0]
    uses = "{{ " + option.replace("-", "_") + " }}"
    write(scratch, LEAKY % {"uses": uses, "extra": extra}, "web-config")
    result = run(scratch, "plan", "-c", "host.cfg")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_the_secret_name_rule_is_the_one_level_4_uses():
    import doctest

    from system_recipes.core.declare import secret_names
    from system_recipes.fleet.model import spec, tables, values

    assert values.looks_secret is secret_names.looks_secret
    assert spec.looks_secret is tables.looks_secret is secret_names.looks_secret
    assert doctest.testmod(secret_names).failed == 0


# -- templates that do not parse -----------------------------------------------------------------


@pytest.mark.parametrize(
    "template, extra, message",
    [
        # a syntax error is jinja2's own message, not "not used by the template": a template
        # that does not parse uses no variable anyone can tell
        ("a\nb\nport = {{ port }\n", "port = 8080", "template demo.ini.j2 line 3: unexpected '}'"),
        ("{% if %}x{% endif %}\n{{ port }}\n", "port = 8080", "template demo.ini.j2 line 1: "),
        # the same without an option to check
        ("a\nport = {{ port }\n", "", "template demo.ini.j2 line 2: unexpected '}'"),
        # in a template it includes: that template's name and line
        ("{% include 'inner.j2' %}\n", "port = 8080", "template inner.j2 line 2: "),
    ],
)
def test_a_template_syntax_error_is_jinjas_message_with_file_and_line(
    scratch, template, extra, message
):
    body = f"""
[web-config]
recipe = system_recipes:template
path = /etc/web/demo.ini
template = demo.ini.j2
{extra}
"""
    write(
        scratch,
        body,
        "web-config",
        {"demo.ini.j2": template, "inner.j2": "ok\n{{ port }\n"},
    )
    for result in (
        run(scratch, "plan", "-c", "host.cfg"),
        subprocess.run(
            [BUILDOUT, "-c", "host.cfg"], capture_output=True, text=True, cwd=scratch.directory
        ),
    ):
        line = one_error_line(result)
        assert line.startswith("Error: [web-config] " + message), line
        assert "not used by the template" not in result.stdout + result.stderr


def test_a_syntax_error_in_inline_text_names_the_line(scratch):
    body = """
[web-config]
recipe = system_recipes:template
path = /etc/web/demo.ini
text = a
    port = {{ port }
port = 8080
"""
    write(scratch, body, "web-config")
    line = one_error_line(run(scratch, "plan", "-c", "host.cfg"))
    assert line == "Error: [web-config] text line 2: unexpected '}'", line


# -- unknown recipes and options ----------------------------------------------------------------

CRON = """
[web-cron]
recipe = %(recipe)s
entries = 0 3 * * * /bin/true
"""


@pytest.mark.parametrize(
    "recipe, message",
    [
        (
            "system_recipes:cronn",
            "[web-cron] recipe: unknown recipe system_recipes:cronn "
            "(did you mean 'system_recipes:cron'?)",
        ),
        (
            "system-recipes:templat",
            "[web-cron] recipe: unknown recipe system-recipes:templat "
            "(did you mean 'system-recipes:template'?)",
        ),
        (
            "system_recipes:zzz",
            "[web-cron] recipe: unknown recipe system_recipes:zzz (expected one "
            "of system_recipes:cron, system_recipes:deployment,",
        ),
    ],
)
def test_an_unknown_recipe_is_one_line(scratch, recipe, message):
    write(scratch, CRON % {"recipe": recipe}, "web-cron")
    for result in (
        run(scratch, "plan", "-c", "host.cfg"),
        run(scratch, "explain", "-c", "host.cfg"),
        subprocess.run(
            [BUILDOUT, "-c", "host.cfg"], capture_output=True, text=True, cwd=scratch.directory
        ),
    ):
        line = one_error_line(result)
        assert line.startswith("Error: " + message), line
        assert "internal error" not in result.stdout + result.stderr


def test_the_known_recipes_are_the_entry_points():
    from importlib.metadata import distribution

    from system_recipes.core.buildout.recipe_names import known_recipes

    declared = {
        ep.name for ep in distribution("system-recipes").entry_points if ep.group == "zc.buildout"
    }
    assert known_recipes() == declared and {"cron", "template", "service"} <= declared


def test_an_unknown_option_names_the_closest_one(scratch):
    write(scratch, CRON % {"recipe": "system_recipes:cron"} + "usre = nobody\n", "web-cron")
    assert (
        one_error_line(run(scratch, "plan", "-c", "host.cfg"))
        == "Error: [web-cron] usre: unknown option (did you mean 'user'?)"
    )
    write(scratch, CRON % {"recipe": "system_recipes:cron"} + "colour = blue\n", "web-cron")
    line = one_error_line(run(scratch, "plan", "-c", "host.cfg"))
    assert line.startswith("Error: [web-cron] colour: unknown option (expected one of ")
