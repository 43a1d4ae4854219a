"""Output for people: lines said from several threads at once (the fleet's hosts) stay whole;
summaries name a handful of targets and count the rest."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from support.declare import fake_run
from support.results import ok

from system_recipes.core.declare.specs import Reload
from system_recipes.core.hooks import reload

SAY_FROM_THREADS = """
import threading
from system_recipes.core.plan import report

def host(number):
    for line in range(400):
        report.say(f"host{number}: state {line} " + "x" * 200)

threads = [threading.Thread(target=host, args=(n,)) for n in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_lines_said_from_threads_at_once_stay_whole():
    result = subprocess.run(
        [sys.executable, "-c", SAY_FROM_THREADS], capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 8 * 400
    whole = re.compile(r"host\d: state \d+ x{200}")
    assert all(whole.fullmatch(line) for line in lines), [
        line[:80] for line in lines if not whole.fullmatch(line)
    ][:3]


# -- summaries that scale ------------------------------------------------------------------------
def reloads(kind: str, count: int) -> list[Reload]:
    return [Reload(kind, f"svc{i:04d}") for i in range(count)]


def test_a_summary_names_a_handful_of_reloads_and_counts_the_rest(tmp_path):
    _, active = fake_run(str(tmp_path), "", reload="off")
    many = reloads("supervisor", 1000) + [Reload("nrpe", "nagios-nrpe-server")]
    said, problems = reload.perform(many, active.settings)
    assert problems == []
    assert said == (
        "supervisor (svc0000 svc0001 svc0002 svc0003 svc0004 and 995 more), "
        "nrpe (nagios-nrpe-server) skipped (reload = off)"
    )
    assert len(said) < 200
    # -v names every one
    said, _ = reload.perform(many, active.settings, verbose=True)
    assert said.count("svc") == 1000 and "more" not in said
    # up to a handful: every name, as before
    said, _ = reload.perform(reloads("supervisor", reload.HANDFUL), active.settings)
    assert said == "supervisor (svc0000 svc0001 svc0002 svc0003 svc0004) skipped (reload = off)"
    grouped = reload.group(reloads("supervisor", 7))
    assert (
        reload.describe(grouped)
        == "supervisor (svc0000 svc0001 svc0002 svc0003 svc0004 and 2 more)"
    )
    assert reload.describe(grouped, verbose=True).count("svc") == 7


# -- one truth in a part's line and the summary ----------------------------------------------------
DRIFT_HOST = """
[buildout]
extends = {base}
parts = web

[system-recipes]
root = {root}

[web]
recipe = system_recipes:service
command = /bin/sleep 1000
config = web.ini.j2

[web-config]
port = %(port)s
"""


def lines_of(output: str, *parts: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        match = re.match(r"  \[([^\]]+)\]\s+(.*)$", line)
        if match and match.group(1) in parts:
            found[match.group(1)] = match.group(2)
    return found


def test_a_drifted_file_is_unchanged_in_the_part_lines_and_the_summary_alike(scratch):
    """A file edited by hand and left as edited: the service's line says its parts are
    unchanged and which one drifted, as the summary does (it said ``updated: ..., changed:
    web-config`` above ``0 updated ... 1 drifted``)."""
    os.makedirs(os.path.join(scratch.directory, "templates"))
    with open(os.path.join(scratch.directory, "templates", "web.ini.j2"), "w") as stream:
        stream.write("[web]\nport = {{ port }}\n")
    scratch.write(DRIFT_HOST % {"port": 8080})
    ok(scratch.buildout())
    with open(scratch.path("/etc/web/web.ini"), "a") as stream:
        stream.write("# edited by hand\n")

    out = ok(scratch.buildout()).stdout
    said = lines_of(out, "web", "web-config")
    assert said["web"] == "unchanged: 4 generated parts; drifted: web-config (left as edited)", out
    assert said["web-config"].startswith("drifted: drift /etc/web/web.ini"), out
    summary = out.splitlines()[-1]
    assert summary.startswith(
        "system-recipes: 0 created, 0 updated, 0 removed, 4 unchanged; 0 files changed; "
        "1 file drifted (left as edited); reloads: "
    ), out

    # another part changes: the service is updated, and still says which part drifted
    scratch.write(
        DRIFT_HOST.replace("command = /bin/sleep 1000", "command = /bin/sleep 999") % {"port": 8080}
    )
    out = ok(scratch.buildout()).stdout
    said = lines_of(out, "web")
    assert said["web"] == (
        "updated: 4 generated parts, changed: web-supervisor; drifted: web-config (left as edited)"
    ), out
    assert ", 1 updated, " in out.splitlines()[-1] and "1 file drifted" in out, out
    assert scratch.read("/etc/web/web.ini").endswith("# edited by hand\n")
