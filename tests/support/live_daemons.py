"""Daemons started on the test hosts as an init system would (support/fleet_hosts.py), each
remembered by its pid so that only it is ever killed: ``start`` runs a daemon's own start
command and waits for its pidfile to name a live process of that host, :class:`Daemons` keeps
them and stops them by pid, ``shop_pid`` asks supervisord for shop's. ``STALE`` lists the
runtime files a booted host does not have."""

from __future__ import annotations

import os
import re
import signal
import time

SUPERVISOR = "/etc/supervisor/supervisord.conf"
# what a booted host does not have: the machine's runtime files of the daemons started here
# (a test host's /run is an overlay of the machine's, not a fresh tmpfs)
STALE = (
    "/run/supervisord.pid /run/supervisor.sock /run/haproxy.pid /run/haproxy/admin.sock "
    "/run/nagios/nrpe.pid /run/nagios4/nagios4.pid /run/postgresql/15-main.pid "
    "/run/postgresql/.s.PGSQL.5432 /run/postgresql/.s.PGSQL.5432.lock"
)


def start(host, command: str, pidfile: str, programs: tuple[str, ...], timeout: float = 20) -> int:
    """Run a daemon's own start command inside the host (it forks and writes ``pidfile``);
    the pid once that process lives, is one of ``programs`` and is in the host's network
    namespace (only such a pid is ever killed)."""
    log = f"/run/start-{programs[0]}.log"
    host.run(f"rm -f {pidfile} && {command} </dev/null >{log} 2>&1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = running(host, pidfile, programs)
        if pid:
            return pid
        time.sleep(0.05)
    raise AssertionError(f"{host.name}: {command} did not start: {host.read(log)}")


def running(host, pidfile: str, programs: tuple[str, ...]) -> int | None:
    """The pid in the host's ``pidfile`` when it is a live ``programs`` of that host."""
    try:
        pid = int(host.read(pidfile).split()[0])
        with open(f"/proc/{pid}/comm") as stream:
            comm = stream.read().strip()
        same = os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{host.pid}/ns/net")
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm in programs and same and alive(pid) else None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Daemons:
    """Every daemon the test starts, by host and name; ``stop()`` ends each by its pid: the
    daemon's own stop signal (PostgreSQL's immediate shutdown removes its SysV segment, which
    a SIGKILL would leave on the machine), SIGKILL for what is left after a few seconds."""

    STOP = {"postgres": signal.SIGQUIT}

    def __init__(self):
        self.pids: dict[tuple[str, str], int] = {}
        self.pidfiles: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        self.namespaces: dict[int, str] = {}
        self.hosts: dict[str, object] = {}

    def add(
        self, host, name: str, pid: int, pidfile: str = "", programs: tuple[str, ...] = ()
    ) -> None:
        self.pids[(host.name, name)] = pid
        self.namespaces[pid] = os.readlink(f"/proc/{host.pid}/ns/net")
        self.hosts[host.name] = host
        if pidfile:
            self.pidfiles[(host.name, name)] = (pidfile, programs)

    def current(self) -> dict[tuple[str, str], int | None]:
        """What each daemon's pidfile names now (a restart, such as PostgreSQL's for its new
        listen address, has a new pid: it is taken over as ours)."""
        found = {}
        for key, (pidfile, programs) in self.pidfiles.items():
            host = self.hosts[key[0]]
            found[key] = running(host, pidfile, programs)
            if found[key] and found[key] != self.pids[key]:
                self.add(host, key[1], found[key], pidfile, programs)
        return found

    def ours(self, pid: int) -> bool:
        """Still the process we started: alive, in its host's network namespace."""
        try:
            return alive(pid) and os.readlink(f"/proc/{pid}/ns/net") == self.namespaces[pid]
        except OSError:
            return False

    def stop(self) -> None:
        self.current()
        for (_, name), pid in reversed(list(self.pids.items())):
            if self.ours(pid):
                os.kill(pid, self.STOP.get(name, signal.SIGTERM))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(map(self.ours, self.pids.values())):
            time.sleep(0.05)
        for pid in self.pids.values():
            if self.ours(pid):
                os.kill(pid, signal.SIGKILL)


def shop_pid(host) -> int:
    """The pid supervisord runs shop-server as (supervisorctl's own answer)."""
    deadline = time.monotonic() + 20
    while True:
        status = host.run(["supervisorctl", "-c", SUPERVISOR, "status"], check=False)
        found = re.search(r"^shop\S*\s+RUNNING\s+pid (\d+)", status.stdout, re.M)
        if found:
            return int(found.group(1))
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{host.name}: shop is not running under supervisord: "
                f"{status.stdout}{status.stderr}"
            )
        time.sleep(0.1)
