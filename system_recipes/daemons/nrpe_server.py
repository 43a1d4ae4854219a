"""NRPE's ``allowed_hosts`` (the ``nrpe-server`` recipe): how NRPE reads the entries, which
files of the server's configuration set them, the validator that requires a server file to be
the only one allowing a host beyond loopback, and the restart that makes a removal take effect.

Measured with the real nrpe 4.1 (tests/recipes/test_nrpe_server.py): every allowed_hosts line NRPE
reads adds to its list -- a file of nrpe.d cannot replace nrpe.cfg's 127.0.0.1,::1 -- and
SIGHUP only adds the new entries: a host taken out stays allowed until NRPE restarts (so the
reload kind ``nrpe-restart`` restarts it).

Separate from :mod:`.nrpe` (check commands: their include files, macros, the reload) because
it judges the server's own configuration, not the commands.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

from system_recipes.core.declare.errors import shown
from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload, validate
from system_recipes.core.plan import report
from system_recipes.daemons.common import directive, running_pid, systemd_running, try_restart_unit
from system_recipes.daemons.nrpe import MAX_LINE, main_config

LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def parse_allowed_host(text: str) -> str:
    """One allowed_hosts entry as NRPE's acl.c takes it: an address, a network (CIDR) or a host
    name (resolved when NRPE reads its configuration); raises ValueError."""
    if "/" in text:
        try:
            return ipaddress.ip_network(text, strict=True).with_prefixlen
        except ValueError as error:
            raise ValueError(f"{shown(text)} is not a network ({error})") from None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) <= 253 and HOST_NAME.fullmatch(text):
        return text.lower()
    raise ValueError(f"{shown(text)} is not an address, a network or a host name")


def is_loopback(entry: str) -> bool:
    if entry.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_network(entry, strict=False).is_loopback
    except ValueError:
        return False


def allowed_entries(value: str) -> list[str]:
    """The entries of one allowed_hosts value (NRPE splits it at commas)."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def server_directives(
    below, main: str, key: str, skip: set[str], extra: dict[str, str]
) -> list[tuple[str, str]]:
    """(host path, value) of every ``key=`` line the NRPE server reads: ``main`` and the files
    it includes (``include=``, ``include_dir=``: every ``.cfg`` file below it). ``below`` maps a
    host path to where it is read here; files in ``skip`` are not read from disk, and
    ``extra`` ({host path: content}) are read as if written (this run's batch)."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()

    def lines_of(path: str) -> list[str]:
        if path in extra:
            return extra[path].splitlines()
        if path in skip:
            return []
        try:
            with open(below(path), encoding="utf-8", errors="replace") as stream:
                return stream.read().splitlines()
        except OSError:
            return []

    def read(path: str, depth: int) -> None:
        path = posixpath.normpath(path)
        if path in seen or depth > 4:
            return
        seen.add(path)
        for line in lines_of(path):
            name, sep, value = line.strip().partition("=")
            name, value = name.strip(), value.strip()
            if not sep or name.startswith("#"):
                continue
            if name == key:
                found.append((path, value))
            elif name == "include":
                read(value, depth + 1)
            elif name == "include_dir":
                directory = posixpath.normpath(value)
                names: set[str] = set()
                for root, _dirs, files in os.walk(below(directory)):
                    relative = os.path.relpath(root, below(directory))
                    names |= {
                        posixpath.normpath(posixpath.join(directory, relative, f)) for f in files
                    }
                names |= {p for p in extra if posixpath.dirname(p) == directory}
                for entry in sorted(names):
                    if entry.endswith(".cfg"):
                        read(entry, depth + 1)

    read(main, 0)
    return found


@dataclass(frozen=True)
class NrpeServerContext:
    """What the ``nrpe-server`` check knows besides the file: ``main``, nrpe.cfg's host path."""

    main: str


@validate.register
class NrpeServerValidator(validate.Validator):
    """A server file: only ``allowed_hosts=``, each entry valid, within NRPE's line buffer, and
    no other file the server reads allowing a host beyond loopback and this file's (NRPE adds
    them all up, so "exactly these hosts" needs the others to allow none)."""

    name = "nrpe-server"
    tools = ()

    def check(self, items, context):
        errors: dict[int, str] = {}
        batch = {item.file.path: item.file.content.decode("utf-8", "replace") for item in items}
        for index, item in enumerate(items):
            text = batch[item.file.path]
            mine: list[str] = []
            for number, raw in enumerate(text.split("\n"), start=1):
                line = raw.strip()
                if len(raw.encode()) > MAX_LINE:
                    errors[index] = f"line {number} is longer than NRPE's {MAX_LINE}-byte buffer"
                    break
                if not line or line.startswith("#"):
                    continue
                name, sep, value = line.partition("=")
                if name.strip() != "allowed_hosts" or not sep:
                    errors[index] = f"line {number}: {shown(line)} is not allowed_hosts=..."
                    break
                try:
                    mine += [parse_allowed_host(entry) for entry in allowed_entries(value)]
                except ValueError as error:
                    errors[index] = f"line {number}: {error}"
                    break
            if index in errors:
                continue
            main = item.given(NrpeServerContext).main
            others = server_directives(
                context.below, main, "allowed_hosts", set(context.leaving), batch
            )
            if item.file.path not in {path for path, _ in others} and mine:
                errors[index] = (
                    f"{main} does not include {item.file.path} (expected "
                    f"include_dir={posixpath.dirname(item.file.path)})"
                )
                continue
            for path, value in others:
                if path == item.file.path:
                    continue
                extra = [
                    e
                    for e in allowed_entries(value)
                    if not is_loopback(e) and e.lower() not in mine
                ]
                if extra:
                    errors[index] = (
                        f"{path} also allows {', '.join(extra)} (NRPE adds up "
                        "every allowed_hosts line: expected only loopback and "
                        "this file's hosts)"
                    )
                    break
        return errors


@reload.register("nrpe-restart")
def restart_nrpe(targets: list[str], settings: Settings) -> reload.Outcome:
    """Restart a running NRPE: SIGHUP would keep every host it allowed before. Under systemd
    ``systemctl try-restart``; else SIGTERM to the pid in ``pid_file`` and the same command
    line started again (as it was started: nrpe -c CONFIG -d daemonizes itself)."""
    outcome = reload.Outcome()
    if systemd_running():
        for service in targets:
            try_restart_unit(service, outcome)
        return outcome
    config = settings.target(main_config(settings))
    pidfile = directive(config, "pid_file") or "/run/nagios/nrpe.pid"
    for service in targets:
        outcome.add(_restart_by_pid(service, pidfile))
    return outcome


def _restart_by_pid(service: str, pidfile: str, timeout: float = 10) -> reload.Outcome:
    pid = running_pid(pidfile, ("nrpe",))
    if pid is None:
        return reload.Outcome(skipped={service: f"not running: no live process in {pidfile}"})
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            command = [word.decode() for word in stream.read().split(b"\0") if word]
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return reload.Outcome(skipped={service: "exited before it could be restarted"})
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_pid(pidfile, ("nrpe",)) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    if os.path.exists(f"/proc/{pid}") and running_pid(pidfile, ("nrpe",)) == pid:
        return reload.Outcome(problems=[f"{service} (pid {pid}) did not stop on SIGTERM"])
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
    )
    new = None
    while time.monotonic() < deadline and new is None:
        new = running_pid(pidfile, ("nrpe",))
        if new is None:
            time.sleep(0.05)
    if result.returncode or new is None:
        output = (result.stderr or result.stdout).strip().splitlines()
        return reload.Outcome(
            problems=[
                f"{service}: {shlex.join(command)} exited "
                f"{result.returncode} after its restart" + (f": {output[-1]}" if output else "")
            ]
        )
    report.say(f"system-recipes: nrpe: restarted {service} (pid {pid} -> {new})")
    return reload.Outcome(done=[service])


HOST_NAME = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
