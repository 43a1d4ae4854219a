"""scripts/demo.sh and scripts/test.sh on a fresh machine: another apt holding the lock makes
them wait, not fail. Real apt-get, inside a sandbox (its /var is a throw-away overlay)."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from support.paths import REPO
from support.sandbox import Sandbox

APT_SH = os.path.join(REPO, "scripts", "apt.sh")
LOCKS = (
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/apt/lists/lock",
    "/var/cache/apt/archives/lock",
)
# apt takes fcntl (POSIX) locks: lockf here is the same kind of lock another apt-get would hold
HOLD = """
import fcntl, sys, time
streams = [open(path, "a") for path in sys.argv[2:]]
for stream in streams:
    fcntl.lockf(stream, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[1]))
"""
HELD_FOR = 4.0


def test_every_apt_get_of_the_scripts_waits_for_the_lock():
    for name in ("demo.sh", "test.sh"):
        with open(os.path.join(REPO, "scripts", name)) as stream:
            text = stream.read()
        assert ". scripts/apt.sh" in text and "apt_install " in text, name
        assert not re.search(r"^[^#]*\bapt-get\b", text, re.M), f"{name} calls apt-get itself"


@pytest.mark.sandbox
def test_apt_install_waits_for_another_apt(tmp_path):
    # no package sources: `update` then reads nothing from the network, but takes its lock
    (tmp_path / "sources.list").write_text("")
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "apt.conf").write_text(
        f'Dir::Etc::sourcelist "{tmp_path}/sources.list";\n'
        f'Dir::Etc::sourceparts "{tmp_path}/sources.list.d";\n'
    )
    env = dict(os.environ, APT_CONFIG=str(tmp_path / "apt.conf"))
    with Sandbox() as box:

        def while_locked(script: str) -> tuple[subprocess.CompletedProcess, float]:
            holder = box.popen(
                ["python3", "-c", HOLD, str(HELD_FOR), *LOCKS], stdout=subprocess.PIPE, text=True
            )
            try:
                assert holder.stdout.readline() == "held\n"
                start = time.monotonic()
                result = box.run(
                    ["bash", "-c", f"set -euo pipefail; . {APT_SH}; {script}"], env=env, timeout=120
                )
                return result, time.monotonic() - start
            finally:
                holder.wait(timeout=30)
                holder.stdout.close()

        # what the scripts did before: plain apt-get fails at once while the lock is held
        plain, elapsed = while_locked("apt-get -qq update")
        assert plain.returncode == 100 and "Could not get lock" in plain.stderr
        assert elapsed < HELD_FOR
        # apt_install (update, then install of an installed package) waits, then succeeds
        result, elapsed = while_locked("apt_install rpm; echo done")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.endswith("done\n") and elapsed >= HELD_FOR - 0.5
        assert "waiting for another apt to finish" in result.stderr
        # another error is not waited for: it is shown, and the function fails
        result, elapsed = while_locked("APT_LOCK_WAIT=0 apt_update; echo not reached")
        assert result.returncode != 0 and "Could not get lock" in result.stderr
        assert "not reached" not in result.stdout and elapsed < HELD_FOR
        (tmp_path / "bad.list").write_text("not a source line\n")
        bad = box.run(
            ["bash", "-c", f". {APT_SH}; apt_update -o Dir::Etc::sourcelist={tmp_path}/bad.list"],
            env=env,
            timeout=60,
        )
        assert bad.returncode == 1 and "could not be read" in bad.stderr
