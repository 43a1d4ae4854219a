"""SysV init scripts (the ``runscript`` recipe's ``kind = sysv``): where a service's pidfile is
(:func:`pidfile`, ``/run/NAME.pid``, which the generated script writes and the reload reads),
the LSB facilities that stand for the systemd targets an ``after`` may name
(:data:`FACILITIES`: ``network-online.target`` is ``$network`` in an LSB header), how a script
is checked, and how its service is restarted or stopped.

The validator ``init-script-sh`` runs ``sh -n`` on each script (one process per script: sh
parses one file without running it): a script that does not parse would otherwise fail only
when the service is started, at the next boot perhaps. The reload ``sysv`` asks the script
itself: ``SCRIPT status`` (exit 0 when it runs), then ``SCRIPT restart``, so a stopped service
stays stopped (skipped, "not running") and a failed restart is a problem naming its last line.
A script removed with its part can no longer be asked: the process its pidfile names is stopped
(SIGTERM, then SIGKILL after 30 s) and the pidfile removed. The restart ``sysv-restart``
(``restart = sysv NAME`` of a template or package part whose file changed) restarts a running
service the same way, and is left out for a service the ``sysv`` reload of the same run
already restarted."""

from __future__ import annotations

import os
import posixpath
import signal
import subprocess
import time

from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload, validate
from system_recipes.core.plan import report


def pidfile(name: str) -> str:
    return f"/run/{name}.pid"


@validate.register
class ShellSyntaxValidator(validate.Validator):
    """``sh -n``: the shell parses the script (one process per script: sh reads one file)."""

    name = "init-script-sh"
    tools = ("sh",)

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str]:
        errors: dict[int, str] = {}
        for index, item in enumerate(items):
            result = validate.run_tool(
                ["sh", "-n", "/dev/stdin"], input=item.file.content, text=False, timeout=60
            )
            output = (result.stdout + result.stderr).decode("utf-8", "replace").strip()
            if result.returncode or output:
                errors[index] = f"sh -n: {output.splitlines()[0] if output else 'failed'}"
        return errors


@reload.register("sysv")
def reload_sysv(targets: list[str], settings: Settings) -> reload.Outcome:
    """Restart a running service whose init script changed; stop one whose script is gone."""
    outcome = reload.Outcome()
    for name in targets:
        script = settings.target(posixpath.join(settings.layout.init_directory, name))
        if os.path.isfile(script):
            outcome.add(_restart_sysv(script, name))
        else:
            outcome.problems += _stop_orphan(name)
            outcome.done.append(name)
    return outcome


def _restart_sysv(script: str, name: str) -> reload.Outcome:
    status = subprocess.run([script, "status"], capture_output=True, text=True)
    if status.returncode != 0:
        return reload.Outcome(skipped={name: "not running"})
    result = subprocess.run([script, "restart"], capture_output=True, text=True)
    if result.returncode:
        output = (result.stderr or result.stdout).strip().splitlines()
        return reload.Outcome(
            problems=[
                f"{script} restart exited {result.returncode}"
                + (f": {output[-1]}" if output else "")
            ]
        )
    return reload.Outcome(done=[name])


@reload.register("sysv-restart", covered_by="sysv")
def restart_sysv(targets: list[str], settings: Settings) -> reload.Outcome:
    """Its configuration file or package changed: restart it when it runs."""
    outcome = reload.Outcome()
    for name in targets:
        script = settings.target(posixpath.join(settings.layout.init_directory, name))
        if os.path.isfile(script):
            outcome.add(_restart_sysv(script, name))
        else:
            outcome.skipped[name] = f"no init script {script}"
    return outcome


def _stop_orphan(name: str, timeout: float = 30) -> list[str]:
    """The init script is gone with its part: stop what its pidfile names (SIGTERM, SIGKILL)."""
    path = pidfile(name)
    try:
        with open(path, encoding="ascii") as stream:
            pid = int(stream.read().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    if pid > 1 and os.path.isdir(f"/proc/{pid}"):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        report.say(f"system-recipes: sysv: stopped {name} (pid {pid}): its part was dropped")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stream:
            return stream.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# LSB facilities for the systemd targets that stand for them
FACILITIES = {
    "network.target": "$network",
    "network-online.target": "$network",
    "remote-fs.target": "$remote_fs",
    "nss-lookup.target": "$named",
    "time-sync.target": "$time",
    "rpcbind.target": "$portmap",
}
