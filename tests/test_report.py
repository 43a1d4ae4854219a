"""Output for people: lines said from several threads at once (the fleet's hosts) stay whole;
summaries name a handful of targets and count the rest."""

from __future__ import annotations

import re
import subprocess
import sys

from support.declare import fake_run

from system_recipes.core import reload
from system_recipes.core.model import Reload

SAY_FROM_THREADS = """
import threading
from system_recipes.core import report

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
