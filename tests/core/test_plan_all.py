"""``plan --all``: every problem of a configuration at once, each one line, exit 1."""

from __future__ import annotations

BROKEN = """
[buildout]
extends = {base}
parts = a b c

[system-recipes]
root = {root}

[a]
recipe = system_recipes:logrotate
paths = /var/log/a/*.log
rotate = many
colour = blue

[b]
recipe = system_recipes:template
path = /etc/b

[c]
recipe = system_recipes:cron
entries = 61 * * * * /bin/true
"""


def test_plan_all_reports_every_problem_and_plan_the_first(scratch):
    scratch.write(BROKEN)
    result = scratch.plan("--all")
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert [e.split(":")[1].strip() for e in errors] == [
        "[a] colour",
        "[a] rotate",
        "[b] template",
        "[c] entries",
    ], errors
    assert "plan: 4 problems" in result.stderr
    first = scratch.plan()
    assert first.returncode == 1
    assert [line for line in first.stderr.splitlines() if line.startswith("Error: ")] == errors[:1]


def test_plan_all_on_a_good_configuration_is_plan(scratch):
    scratch.write(
        BROKEN.replace("parts = a b c", "parts = b").replace(
            "path = /etc/b", "path = /etc/b\ntext = b"
        )
    )
    result = scratch.plan("--all")
    assert result.returncode == 2 and "[b] create: create /etc/b" in result.stdout, result.stdout
