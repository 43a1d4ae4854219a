"""Output for people: lines said from several threads at once (the fleet's hosts) stay whole."""

from __future__ import annotations

import re
import subprocess
import sys

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
