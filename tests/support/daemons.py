"""Talking to the real daemons running in a sandbox: supervisord (supervisorctl), NRPE
(check_nrpe)."""

from __future__ import annotations

import re
import time

CONFIG = "/etc/supervisor/supervisord.conf"
CHECK_NRPE = "/usr/lib/nagios/plugins/check_nrpe"


def ctl(sandbox, *args: str):
    """supervisorctl of the sandbox's supervisord."""
    return sandbox.run(["supervisorctl", "-c", CONFIG, *args], timeout=60)


def status(sandbox, name: str) -> str:
    return ctl(sandbox, "status", name).stdout.strip()


def running_pid(sandbox, name: str, timeout: float = 20) -> int:
    """Wait for ``name`` to be RUNNING under supervisord; its pid."""
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = status(sandbox, name)
        match = re.search(r"\bRUNNING\s+pid (\d+)", line)
        if match:
            return int(match.group(1))
        time.sleep(0.2)
    raise AssertionError(f"{name} is not RUNNING: {line}")


def ask(sandbox, port: int, command: str) -> tuple[int, str]:
    """check_nrpe against the sandbox's NRPE on ``port``: its exit status and output."""
    result = sandbox.run(
        [CHECK_NRPE, "-H", "127.0.0.1", "-p", str(port), "-c", command], timeout=30
    )
    return result.returncode, result.stdout.strip()
