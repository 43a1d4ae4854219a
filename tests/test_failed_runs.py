"""A run that fails, or is killed, leaves nothing behind: no temporary file beside a real one, no
state directory on a root it never applied to, no rewritten lock; and a run without the rights
it needs says so in one line."""

from __future__ import annotations

import os

from support.paths import BUILDOUT
from support.results import ok

APP = """
[buildout]
extends = {base}
parts = app-config

[app-config]
recipe = system_recipes:template
path = /etc/app/app.ini
text = port = {{ port }}
port = 8080
"""

NEW = """
[s00]
recipe = system_recipes:template
path = /etc/s00/svc.ini
text = service
"""


def leftovers(host, top: str) -> list[str]:
    found = []
    for dirpath, _, filenames in os.walk(host.path(top)):
        found += [os.path.join(dirpath, name) for name in filenames if ".sr-tmp" in name]
    return found


def killed_in_write(host, count: int = 1):
    """buildout, SIGKILLed in its ``count``-th file write: the temporary file written, not yet
    renamed into place."""
    return host.sandbox.run(
        [
            "env",
            f"SYSTEM_RECIPES_FAULT_KILL_WRITING={count}",
            BUILDOUT,
            "-c",
            os.path.join(host.directory, "host.cfg"),
        ],
        cwd=host.directory,
    )


def test_a_run_killed_in_a_write_leaves_no_temporary_file(host):
    host.write(APP)
    ok(host.buildout())
    # an update of app.ini and a new file in a new directory, killed in the second write
    host.write(
        APP.replace("port = 8080", "port = 9090").replace(
            "parts = app-config", "parts = app-config s00"
        )
        + NEW
    )
    killed = killed_in_write(host, 2)
    assert killed.returncode in (-9, 137), killed
    assert "port = 9090" in host.read("/etc/app/app.ini")  # the first write was made
    assert leftovers(host, "/etc/s00"), "the kill came while the temporary file existed"
    host.write(APP)
    out = ok(host.buildout()).stdout
    assert "rolled back" in out
    assert host.read("/etc/app/app.ini") == "port = 8080\n"
    assert leftovers(host, "/etc") == []
    assert not host.exists("/etc/s00")  # the directory the killed run made goes too
    assert not host.exists("/var/lib/system-recipes/journal")


def test_a_run_killed_writing_an_update_leaves_no_temporary_file(host):
    host.write(APP)
    ok(host.buildout())
    host.write(APP.replace("port = 8080", "port = 9090"))
    assert killed_in_write(host, 1).returncode in (-9, 137)
    assert leftovers(host, "/etc/app")
    out = ok(host.buildout()).stdout
    assert "rolled back" in out
    assert host.read("/etc/app/app.ini") == "port = 9090\n"
    assert leftovers(host, "/etc/app") == []
