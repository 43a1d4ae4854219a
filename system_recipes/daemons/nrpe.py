"""TODO docstring"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import shlex
import signal
import subprocess
import time

from ..core import reload, report, validate
from ..core.errors import shown
from ..core.settings import Settings
from .common import IncludeNames, directive, reload_service, running_pid, systemd_running

# nrpe.c MAX_COMMAND_ARGUMENTS: $ARG1$ ... $ARG16$ take the arguments of a query
MAX_ARGUMENTS = 16


ARG_MACRO = re.compile(r"(\$ARG[0-9]+\$)")


NRPE_PROGRAMS = ("/usr/sbin/nrpe", "/usr/bin/nrpe")


# what nrpe.c logs, built with --enable-command-args, for arguments dont_blame_nrpe refuses
ARGUMENTS_BUILT_IN = b"Request contained command arguments, but argument option is not enabled"


def escape_dollars(word: str) -> str:
    """``$`` -> ``$$`` (NRPE's macro processing turns it back into one ``$``), except in the
    ``$ARGn$`` macros, which are meant for NRPE."""
    return "".join(
        part if ARG_MACRO.fullmatch(part) else part.replace("$", "$$")
        for part in ARG_MACRO.split(word)
    )


def nrpe_macros(command: str, arguments: tuple[str, ...] = ()) -> str:
    """What NRPE runs for a command line (nrpe.c process_macros): the text between two ``$``
    is a macro; ``$ARGn$`` is the n-th argument of the query (empty when none came, which is
    always so with ``dont_blame_nrpe=0``), ``$$`` is ``$``, any other ``$x$`` stays, and a last
    unpaired ``$`` gains a second one. Checked against a real NRPE in tests/test_nrpe.py."""
    out = []
    for index, piece in enumerate(command.split("$")):
        if index % 2 == 0:
            out.append(piece)
        elif piece.startswith("ARG"):
            digits = re.match(r"\s*[+-]?[0-9]*", piece[3:])  # atoi()
            assert digits is not None  # every part of the pattern is optional: it always matches
            number = int(digits.group()) if digits.group().strip().lstrip("+-") else 0
            if 1 <= number <= min(len(arguments), MAX_ARGUMENTS):
                out.append(arguments[number - 1])
        elif piece == "":
            out.append("$")
        else:
            out.append(f"${piece}$")
    return "".join(out)


# -- the parse check --------------------------------------------------------------------------
def read_commands(text: str) -> tuple[dict[str, str], list[str]]:
    """Read an NRPE include file the way nrpe's read_config_file() does.

    Returns (commands, problems). Only comments, blank lines and ``command[NAME]=LINE`` are
    expected in a generated include file.
    """
    commands: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if len(raw.encode()) > MAX_LINE:
            problems.append(f"line {number} is longer than NRPE's {MAX_LINE}-byte buffer")
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name:
            problems.append(f"line {number}: no variable name")
            continue
        if not value.strip():
            problems.append(f"line {number}: no variable value")
            continue
        match = re.fullmatch(r"command\[([^\]]*)\]", name)
        if not match:
            problems.append(f"line {number}: {shown(name)} is not a command definition")
            continue
        command = match.group(1)
        if not CHECK_NAME.fullmatch(command):
            problems.append(f"line {number}: invalid command name {shown(command)}")
        elif command in commands:
            problems.append(f"line {number}: command {command} is defined twice")
        commands[command] = value
    return commands, problems


@validate.register
class NrpeValidator(validate.Validator):
    """Parse check (NRPE has no config test mode) plus duplicate names in the include dir."""

    name = "nrpe"
    tools = ()

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str]:
        errors: dict[int, str] = {}
        names = IncludeNames({item.file.path for item in items} | context.leaving, commands_on_disk)
        for index, item in enumerate(items):
            commands, problems = read_commands(item.file.content.decode("utf-8", "replace"))
            if problems:
                errors[index] = "NRPE would not read this file: " + "; ".join(problems)
                continue
            clash = names.clash(context.root, item.file.path, commands)
            if clash:
                errors[index] = (
                    f"command {clash[0]} is also defined in {clash[1]} (NRPE reads "
                    "its include directory in no defined order)"
                )
        return errors


def commands_on_disk(path: str) -> list[str]:
    """The command names an NRPE include file on disk defines (unreadable: none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            text = stream.read()
    except OSError:
        return []
    return [match.group(1) for match in re.finditer(r"^\s*command\[([^\]]*)\]\s*=", text, re.M)]


# -- the reload -----------------------------------------------------------------------------
def main_config(settings: Settings) -> str:
    """nrpe.cfg: beside the include directory (Debian), else /etc/nagios/nrpe.cfg (Red Hat)."""
    beside = posixpath.join(posixpath.dirname(settings.layout.nrpe_include), "nrpe.cfg")
    for candidate in (beside, "/etc/nagios/nrpe.cfg"):
        if os.path.isfile(settings.target(candidate)):
            return candidate
    return beside


def takes_arguments(settings: Settings) -> bool | str:
    """True when the NRPE below the root hands a query's arguments to ``$ARGn$``; else why not.
    It needs ``dont_blame_nrpe=1`` and a build with command arguments: Debian's package is
    built without them (README.Debian), and its binary then holds only the message it logs
    when a query brings arguments."""
    if server_setting(settings, "dont_blame_nrpe") != "1":
        return f"the server has dont_blame_nrpe=0 ({main_config(settings)})"
    for program in NRPE_PROGRAMS:
        try:
            with open(settings.target(program), "rb") as stream:
                built_with = ARGUMENTS_BUILT_IN in stream.read()
        except OSError:
            continue
        return True if built_with else f"{program} is built without command arguments"
    return f"no NRPE program ({' or '.join(NRPE_PROGRAMS)}) to tell whether it takes arguments"


def server_setting(settings: Settings, key: str) -> str | None:
    """``key`` as the NRPE server below the root reads it: the last value in its main config
    and the files that config includes (``include=``, ``include_dir=``, in NRPE's order)."""
    found: list[str] = []

    def read(path: str, depth: int) -> None:
        try:
            with open(settings.target(path), encoding="utf-8", errors="replace") as stream:
                lines = stream.read().splitlines()
        except OSError:
            return
        for line in lines:
            name, sep, value = line.strip().partition("=")
            name, value = name.strip(), value.strip()
            if not sep or name.startswith("#"):
                continue
            if name == key:
                found.append(value)
            elif name == "include" and depth < 4:
                read(value, depth + 1)
            elif name == "include_dir" and depth < 4:
                directory = settings.target(value)
                try:
                    names = sorted(os.listdir(directory))
                except OSError:
                    continue
                for entry in names:
                    if entry.endswith(".cfg"):
                        read(posixpath.join(value, entry), depth + 1)

    read(main_config(settings), 0)
    return found[-1] if found else None


@reload.register("nrpe")
def reload_nrpe(targets: list[str], settings: Settings) -> reload.Outcome:
    config = settings.target(main_config(settings))
    pidfile = directive(config, "pid_file") or "/run/nagios/nrpe.pid"
    outcome = reload.Outcome()
    for service in targets:
        outcome.add(reload_service("nrpe", service, pidfile, ("nrpe",)))
    return outcome


CHECK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


# NRPE reads its configuration with fgets() into a buffer of MAX_INPUT_BUFFER (2048) bytes:
# a longer line is cut in two and the rest is read as a line of its own.
MAX_LINE = 2047


# -- allowed_hosts (the nrpe-server recipe) -------------------------------------------------
# Measured with the real nrpe 4.1 (tests/test_nrpe_server.py): every allowed_hosts line NRPE
# reads adds to its list -- a file of nrpe.d cannot replace nrpe.cfg's 127.0.0.1,::1 -- and
# SIGHUP only adds the new entries: a host taken out stays allowed until NRPE restarts.
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


@validate.register
class NrpeServerValidator(validate.Validator):
    """A server file: only ``allowed_hosts=``, each entry valid, within NRPE's line buffer, and
    no other file the server reads allowing a host beyond loopback and this file's (NRPE adds
    them all up, so "exactly these hosts" needs the others to allow none).

    Check arguments: (nrpe.cfg's host path,)."""

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
            main = item.check.arguments[0]
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
            result = subprocess.run(
                ["systemctl", "try-restart", service], capture_output=True, text=True
            )
            if result.returncode:
                outcome.problems.append(
                    f"systemctl try-restart {service} exited {result.returncode}"
                )
            else:
                outcome.done.append(service)
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
