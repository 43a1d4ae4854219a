"""What the daemon recipes share: reloading a daemon that may or may not run, and names a
daemon reads from every file of its include directory.

The rules (docs/writing-recipes.md): with systemd as PID 1, ``systemctl reload`` a unit that is
active; without systemd, send SIGHUP to the pid in the daemon's pidfile (what the Debian init
scripts' ``reload`` does). A daemon that is not running is said and skipped, not an error. A
daemon that dies right after the signal (it re-read a configuration it refused) is an error.
"""

from __future__ import annotations

import os
import posixpath
import signal
import subprocess
import time
from collections.abc import Callable, Iterable

from system_recipes.core.hooks import reload
from system_recipes.core.plan import report


def systemd_running() -> bool:
    """True when systemd is the init system (sd_booted(3))."""
    return os.path.isdir("/run/systemd/system")


def directive(path: str, key: str) -> str | None:
    """The last ``key=value`` of a flat config file (nrpe.cfg, nagios.cfg), or None."""
    found = None
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                name, sep, value = line.strip().partition("=")
                if sep and name.strip() == key:
                    found = value.strip()
    except OSError:
        return None
    return found


def running_pid(pidfile: str, programs: tuple[str, ...]) -> int | None:
    """The pid in ``pidfile`` when that process lives and is one of ``programs``."""
    try:
        with open(pidfile, encoding="ascii", errors="replace") as stream:
            pid = int(stream.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid <= 1:
        return None
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as stream:
            comm = stream.read().strip()
    except OSError:
        return None
    return pid if comm in programs else None


def _alive(pid: int, programs: tuple[str, ...]) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stream:
            fields = stream.read().rpartition(")")[2].split()
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as stream:
            comm = stream.read().strip()
    except OSError:
        return False
    return bool(fields) and fields[0] != "Z" and comm in programs


def reload_unit(service: str) -> reload.Outcome:
    """``systemctl reload`` of an active unit: done, skipped (not active) or a problem."""
    active = subprocess.run(
        ["systemctl", "is-active", "--quiet", service], capture_output=True, text=True
    )
    if active.returncode:
        return reload.Outcome(skipped={service: "not running"})
    result = subprocess.run(["systemctl", "reload", service], capture_output=True, text=True)
    if result.returncode:
        output = (result.stderr or result.stdout).strip().splitlines()
        return reload.Outcome(
            problems=[
                f"systemctl reload {service} exited "
                f"{result.returncode}" + (f": {output[-1]}" if output else "")
            ]
        )
    return reload.Outcome(done=[service])


def try_restart_unit(service: str, outcome: reload.Outcome) -> None:
    """``systemctl try-restart`` of one unit (a stopped unit stays stopped), into ``outcome``."""
    result = subprocess.run(["systemctl", "try-restart", service], capture_output=True, text=True)
    if result.returncode:
        outcome.problems.append(f"systemctl try-restart {service} exited {result.returncode}")
    else:
        outcome.done.append(service)


def reload_service(
    kind: str, service: str, pidfile: str, programs: tuple[str, ...], settle: float = 1.0
) -> reload.Outcome:
    """Reload ``service``: done, skipped (not running) or a problem."""
    if systemd_running():
        return reload_unit(service)
    pid = running_pid(pidfile, programs)
    if pid is None:
        return reload.Outcome(skipped={service: f"not running: no live process in {pidfile}"})
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return reload.Outcome(skipped={service: "exited before it could be reloaded"})
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if not _alive(pid, programs):
            return reload.Outcome(
                problems=[
                    f"{service} (pid {pid}) exited after SIGHUP: it "
                    "refused the new configuration (see its log)"
                ]
            )
        time.sleep(0.1)
    report.say(f"system-recipes: {kind}: sent SIGHUP to {service} (pid {pid})")
    return reload.Outcome(done=[service])


class IncludeNames:
    """Names (NRPE commands, supervisor groups) a daemon reads from all the files of its include
    directory, in no defined order: each name may be defined by one file only.

    ``names_in(real_path)`` reads the names one file on disk defines; files in ``skip`` (this
    run's batch, and files this run removes) are not read from disk.
    """

    def __init__(self, skip: set[str], names_in: Callable[[str], Iterable[str]]):
        self.skip, self.names_in = skip, names_in
        self.defined: dict[str, str] = {}  # name -> host path defining it
        self._read: set[tuple[str, str]] = set()

    def clash(self, root: str, path: str, names: Iterable[str]) -> tuple[str, str] | None:
        """Register the ``names`` the file ``path`` defines; (name, other file) on a clash."""
        include, suffix = posixpath.dirname(path), posixpath.splitext(path)[1]
        if (root, include) not in self._read:
            self._read.add((root, include))
            for host_path, real in self._files(root, include, suffix):
                for name in self.names_in(real):
                    self.defined.setdefault(name, host_path)
        for name in names:
            other = self.defined.get(name)
            if other is not None and other != path:
                return name, other
            self.defined[name] = path
        return None

    def _files(self, root: str, include: str, suffix: str) -> list[tuple[str, str]]:
        directory = os.path.join(root, include.lstrip("/"))
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return []
        found = []
        for name in names:
            host_path, real = posixpath.join(include, name), os.path.join(directory, name)
            if name.endswith(suffix) and host_path not in self.skip and os.path.isfile(real):
                found.append((host_path, real))
        return found
