"""Diffs are coloured on a terminal (rich's styles: added lines green, removed red, hunks cyan),
never when the output is piped or NO_COLOR is set. The terminal is a real pty."""

from __future__ import annotations

import os
import pty
import subprocess

import pytest
from support.paths import BUILDOUT, SYSTEM_RECIPES

HOST = """
[buildout]
extends = {base}
parts = web-config

[system-recipes]
root = {root}

[web-config]
recipe = system_recipes:template
path = /etc/web/web.ini
text = [web]
    port = %(port)s
"""
GREEN, RED, CYAN = "\x1b[32m", "\x1b[31m", "\x1b[36m"


def on_a_terminal(command: list[str], cwd: str, **env: str) -> tuple[int, str]:
    """Run ``command`` with its stdout on a new pty; what it printed, newlines as written."""
    master, slave = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment.update({"TERM": "xterm", **env})
    process = subprocess.Popen(
        command, stdout=slave, stderr=subprocess.PIPE, cwd=cwd, env=environment
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    process.stderr.read()
    process.stderr.close()
    code = process.wait(timeout=300)
    return code, b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


def piped(command: list[str], cwd: str) -> tuple[int, str]:
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=dict(environment, TERM="xterm")
    )
    return result.returncode, result.stdout


@pytest.fixture
def changed(scratch):
    """A host with a file written, then its port changed: the plan has a diff to show."""
    scratch.write(HOST % {"port": 8080})
    assert subprocess.run([BUILDOUT, "-c", "host.cfg"], cwd=scratch.directory).returncode == 0
    scratch.write(HOST % {"port": 9090})
    return scratch


def test_a_plan_on_a_terminal_colours_its_diff(changed):
    code, out = on_a_terminal([SYSTEM_RECIPES, "plan", "-c", "host.cfg"], changed.directory)
    assert code == 2, out
    assert f"{GREEN}+port = 9090" in out and f"{RED}-port = 8080" in out, repr(out)
    assert f"{CYAN}@@ " in out, repr(out)
    # the part lines and the summary are not diff lines: as they were
    assert "  [web-config] update: update /etc/web/web.ini\n" in out, repr(out)
    assert "\nplan: 0 created, 1 updated" in out, repr(out)


def test_a_run_on_a_terminal_colours_its_diff(changed):
    code, out = on_a_terminal([BUILDOUT, "-c", "host.cfg", "-v"], changed.directory)
    assert code == 0, out
    assert f"{GREEN}+port = 9090" in out and f"{RED}-port = 8080" in out, repr(out)
    assert changed.read("/etc/web/web.ini") == "[web]\nport = 9090\n"


def test_no_colour_when_piped_or_no_color_is_set(changed):
    for code, out in (
        piped([SYSTEM_RECIPES, "plan", "-c", "host.cfg"], changed.directory),
        on_a_terminal([SYSTEM_RECIPES, "plan", "-c", "host.cfg"], changed.directory, NO_COLOR="1"),
        on_a_terminal([SYSTEM_RECIPES, "plan", "-c", "host.cfg"], changed.directory, TERM="dumb"),
    ):
        assert code == 2 and "\n+port = 9090\n" in out and "\n-port = 8080\n" in out, out
        assert "\x1b" not in out, repr(out)
    code, out = on_a_terminal([BUILDOUT, "-c", "host.cfg", "-v"], changed.directory, NO_COLOR="1")
    assert code == 0 and "\n+port = 9090\n" in out and "\x1b" not in out, repr(out)


def test_each_kind_of_line_has_its_style_and_the_text_is_kept():
    from system_recipes.core.plan.report import coloured

    text = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a [b]\n+++c\n same\n\\ No newline at end of file"
    lines = coloured(text).split("\n")
    assert lines == [
        "\x1b[1m--- a/x\x1b[0m",
        "\x1b[1m+++ b/x\x1b[0m",
        f"{CYAN}@@ -1,2 +1,2 @@\x1b[0m",
        f"{RED}-a [b]\x1b[0m",  # no markup read in a file's text
        f"{GREEN}+++c\x1b[0m",  # an added line "++c", not a file name
        " same",
        "\x1b[2m\\ No newline at end of file\x1b[0m",
    ]
    assert "    (secret: content of /etc/x not shown)" == coloured(
        "    (secret: content of /etc/x not shown)"
    )
