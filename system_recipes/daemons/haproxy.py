"""HAProxy: how it is started on each layout, how a file of its include directory is judged
(``haproxy -c``) and how a running haproxy is reloaded without dropping connections.

What the packages do (checked against Debian 12's haproxy 2.6 and RHEL 9's unit):

- Red Hat's unit starts ``haproxy -Ws -f $CONFIG -f $CFGDIR`` with
  ``CFGDIR=/etc/haproxy/conf.d``: files there are read after ``haproxy.cfg``.
- Debian's unit starts ``haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS`` and reads only
  ``/etc/haproxy/haproxy.cfg``. ``/etc/default/haproxy`` could add ``-f`` (its ``EXTRAOPTS``),
  but that file is the package's (a conffile) and overriding ``EXTRAOPTS`` there drops the
  unit's own ``-S /run/haproxy-master.sock``. So the recipe writes a systemd drop-in of its
  own that starts haproxy as Red Hat's unit does (:func:`unit_dropin`). Debian's init script
  (no systemd) reads only ``/etc/default/haproxy``: there the operator adds
  ``EXTRAOPTS="-f /etc/haproxy/conf.d"`` once; the reload says so when haproxy does not read
  the directory.

haproxy reads a directory's ``*.cfg`` files in lexical order, after the main file, and a
``frontend``/``backend`` uses the last ``defaults`` section read before it: the main file's.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload, validate
from system_recipes.core.plan import report
from system_recipes.daemons.common import (
    reload_unit,
    running_pid,
    systemd_running,
    try_restart_unit,
)

PROGRAM = "/usr/sbin/haproxy"
PIDFILE = "/run/haproxy.pid"  # Debian's and Red Hat's units and Debian's init script

# "[ALERT]    (123) : config : parsing [/x/shop.cfg:5] : message" (2.6); older releases
# write "[ALERT] 190/153712 (123) : parsing [...]"
LEVEL = re.compile(r"^\[(ALERT|WARNING)\][^:]*:\s*(?:config\s*:\s*)?(.*)$")
WHERE = re.compile(r"\[([^\[\]]+):(\d+)\]")
ANYWHERE = re.compile(r"(/[^\s\[\]:]+):(\d+)")
SUMMARY = (
    "Error(s) found in configuration file",
    "Fatal errors found in configuration",
    "Failed to initialize server(s) addr",
)


def unit_dropin(include: str, section: str) -> str:
    """A systemd drop-in for Debian's haproxy.service that adds ``-f INCLUDE`` the way Red
    Hat's unit does (its variables stay: ``/etc/default/haproxy`` keeps working)."""
    return (
        f"# Written by system-recipes for [{section}]: Debian's haproxy.service reads only\n"
        f"# $CONFIG; this makes it read {include} too, as Red Hat's unit does. Every\n"
        "# haproxy section writes the same drop-in; any one of them is enough.\n"
        "[Service]\n"
        f'Environment="CFGDIR={include}"\n'
        "ExecStart=\n"
        f"ExecStart={PROGRAM} -Ws -f $CONFIG -f $CFGDIR -p $PIDFILE $EXTRAOPTS\n"
        "ExecReload=\n"
        f"ExecReload={PROGRAM} -Ws -f $CONFIG -f $CFGDIR -c -q $EXTRAOPTS\n"
        "ExecReload=/bin/kill -USR2 $MAINPID\n"
    )


# -- the validator ----------------------------------------------------------------------------
@dataclass(frozen=True)
class HaproxyContext:
    """What the ``haproxy`` check knows besides the file: the ``main`` configuration's host
    path, and the option that wrote each line of the file (``origins``: an error names it)."""

    main: str
    origins: tuple[str, ...] = ()


@validate.register
class HaproxyValidator(validate.Validator):
    """``haproxy -c -f MAIN -f DIR``: DIR is a copy of the include directory as it will be
    (the files on disk, minus those leaving, plus this run's), so one process judges every
    changed file and sees clashes with the others (two frontends of one name). haproxy names
    the file and line of each complaint: it is mapped back to the option that wrote it.
    Warnings about our files count (a directive haproxy ignores); its exit code alone would
    let them pass."""

    name = "haproxy"
    tools = ("haproxy",)

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str | validate.Problem]:
        errors: dict[int, str | validate.Problem] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        for index, item in enumerate(items):
            main = item.given(HaproxyContext).main
            groups.setdefault((main, posixpath.dirname(item.file.path)), []).append(index)
        for (main, include), indexes in groups.items():
            errors.update(self._check_directory(items, indexes, main, include, context))
        return errors

    def _check_directory(
        self,
        items: list[validate.Item],
        indexes: list[int],
        main: str,
        include: str,
        context: validate.ValidationContext,
    ) -> dict[int, str | validate.Problem]:
        if not os.path.isfile(context.below(main)):
            return {
                i: f"haproxy's main configuration {main} is not there below the root "
                "(install the haproxy package)"
                for i in indexes
            }
        ours = {posixpath.basename(items[i].file.path): i for i in indexes}
        with tempfile.TemporaryDirectory(prefix="system-recipes-haproxy-") as directory:
            copy = os.path.join(directory, "d")
            os.mkdir(copy)
            _stage_directory(items, ours, include, copy, context)
            result = validate.run_tool(
                ["haproxy", "-c", "-f", context.below(main), "-f", copy], timeout=120
            )
            errors, unplaced = _read_complaints(
                items, ours, include, copy, result.stdout + result.stderr
            )
            if result.returncode and not any(i in errors for i in indexes):
                why = unplaced[0] if unplaced else f"exited {result.returncode}"
                for index in indexes:
                    errors[index] = f"haproxy -c refuses the configuration with this file: {why}"
        return errors


def _stage_directory(
    items: list[validate.Item],
    ours: dict[str, int],
    include: str,
    copy: str,
    context: validate.ValidationContext,
) -> None:
    """``copy`` becomes the include directory as it will be: the other .cfg files on disk
    (minus those leaving), plus this run's."""
    on_disk = context.below(include)
    for name in sorted(os.listdir(on_disk)) if os.path.isdir(on_disk) else []:
        host_path = posixpath.join(include, name)
        if (
            name.endswith(".cfg")
            and name not in ours
            and host_path not in context.leaving
            and os.path.isfile(os.path.join(on_disk, name))
        ):
            shutil.copyfile(os.path.join(on_disk, name), os.path.join(copy, name))
    for name, index in ours.items():
        with open(os.path.join(copy, name), "wb") as stream:
            stream.write(items[index].file.content)


def _read_complaints(
    items: list[validate.Item], ours: dict[str, int], include: str, copy: str, output: str
) -> tuple[dict[int, str | validate.Problem], list[str]]:
    """haproxy's complaints: each one placed in one of our files is that file's error (the
    first per file); the alerts placed in none are returned apart."""
    errors: dict[int, str | validate.Problem] = {}
    unplaced: list[str] = []
    for line in output.splitlines():
        match = LEVEL.match(line.strip())
        if not match:
            continue
        level, message = match.groups()
        # name the files as the host will have them
        message = message.replace(copy + "/", include + "/")
        name, number = _first_place(message, include, ours)
        if any(s in message for s in SUMMARY):
            continue
        if name is not None and number is not None:
            index = ours[name]
            if index not in errors:
                errors[index] = validate.locate(
                    f"haproxy -c: {_without_place(message, name, number)}",
                    items[index].file.content,
                    number,
                    items[index].given(HaproxyContext).origins,
                )
        elif level == "ALERT":
            unplaced.append(message)
    return errors, unplaced


def _first_place(message: str, include: str, ours: dict[str, int]) -> tuple[str | None, int | None]:
    """The first place the message names in one of our files: haproxy reports a clash where it
    finds the second definition, which may be the other file's."""
    for where in ANYWHERE.finditer(message):
        if (
            posixpath.dirname(where.group(1)) == include
            and posixpath.basename(where.group(1)) in ours
        ):
            return posixpath.basename(where.group(1)), int(where.group(2))
    return None, None


def _without_place(message: str, name: str, number: int) -> str:
    """The message without its leading 'parsing [FILE:LINE]' (the line is named after it)."""
    text = re.sub(r"^parsing\s*", "", message, flags=re.I)
    bracket = WHERE.match(text)
    if bracket and int(bracket.group(2)) == number and posixpath.basename(bracket.group(1)) == name:
        text = text[bracket.end() :]  # the line is named after the message
    return text.strip(" :")


# -- reloads ----------------------------------------------------------------------------------
def command_line(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            return [a.decode("utf-8", "replace") for a in stream.read().split(b"\0") if a]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """The process lives and is haproxy (not a zombie). Its command line is not read: while
    the master re-executes itself it may be empty for an instant."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stream:
            state = stream.read().rpartition(")")[2].split()[:1]
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as stream:
            comm = stream.read().strip()
    except OSError:
        return False
    return state != ["Z"] and comm == "haproxy"


def config_arguments(argv: list[str]) -> list[str]:
    """The ``-f FILE`` arguments of a haproxy command line, in order."""
    found = []
    for index, word in enumerate(argv):
        if word == "-f" and index + 1 < len(argv):
            found += ["-f", argv[index + 1]]
    return found


def reads(argv: list[str], include: str) -> bool:
    files = config_arguments(argv)[1::2]
    return any(posixpath.normpath(f) == posixpath.normpath(include) for f in files)


def not_reading(service: str, pid: int, include: str) -> str:
    return (
        f"{service} (pid {pid}) was started without -f {include}: it does not read the "
        f'files there (Debian without systemd: add EXTRAOPTS="-f {include}" to '
        "/etc/default/haproxy and restart it)"
    )


def _main_pid(service: str) -> int | None:
    result = subprocess.run(
        ["systemctl", "show", "-p", "MainPID", "--value", service], capture_output=True, text=True
    )
    value = result.stdout.strip()
    return int(value) if value.isdigit() and int(value) > 1 else None


@reload.register("haproxy")
def reload_haproxy(targets: list[str], settings: Settings) -> reload.Outcome:
    include = settings.layout.haproxy_include
    outcome = reload.Outcome()
    for service in targets:
        if systemd_running():
            outcome.add(_reload_unit(service, include))
        else:
            outcome.add(_reload_process(service, include))
    return outcome


def _reload_unit(service: str, include: str) -> reload.Outcome:
    """``systemctl reload``: the unit checks the configuration, then SIGUSR2 to the master."""
    outcome = reload_unit(service)
    if not outcome.done:
        return outcome
    pid = _main_pid(service)
    if pid and not reads(command_line(pid), include):
        return reload.Outcome(problems=[not_reading(service, pid, include)])
    return reload.Outcome(done=[service])


def _reload_process(service: str, include: str, settle: float = 1.0) -> reload.Outcome:
    """Without systemd, reload the way it was started: a master (``-W``/``-Ws``) re-executes
    itself on SIGUSR2 and keeps its pid; a daemon of the old kind (``-D``, Debian's init
    script) is replaced by a new process started with its own arguments and ``-sf`` its pids,
    which finish their connections and exit. Either way the configuration it reads is checked
    first, as the units' ExecReload does."""
    pid = running_pid(PIDFILE, ("haproxy",))
    if pid is None:
        return reload.Outcome(skipped={service: f"not running: no live process in {PIDFILE}"})
    argv = command_line(pid)
    if not argv:
        return reload.Outcome(skipped={service: "exited before it could be reloaded"})
    if not reads(argv, include):
        return reload.Outcome(problems=[not_reading(service, pid, include)])
    checked = subprocess.run(
        [argv[0], "-c", "-q", *config_arguments(argv)], capture_output=True, text=True
    )
    if checked.returncode:
        output = (checked.stderr or checked.stdout).strip().splitlines()
        return reload.Outcome(
            problems=[
                f"{service} not reloaded: haproxy -c exited "
                f"{checked.returncode}" + (f": {output[-1]}" if output else "")
            ]
        )
    if "-W" in argv or "-Ws" in argv:
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            if not alive(pid):
                return reload.Outcome(
                    problems=[f"{service} master (pid {pid}) exited after SIGUSR2 (see its log)"]
                )
            time.sleep(0.1)
        report.say(f"system-recipes: haproxy: sent SIGUSR2 to {service} master (pid {pid})")
        return reload.Outcome(done=[service])
    with open(PIDFILE, encoding="ascii", errors="replace") as stream:
        old = [word for word in stream.read().split() if word.isdigit()]
    started = subprocess.run(_without_finish(argv) + ["-sf", *old], capture_output=True, text=True)
    if started.returncode:
        output = (started.stderr or started.stdout).strip().splitlines()
        return reload.Outcome(
            problems=[
                f"{service}: the new haproxy exited "
                f"{started.returncode}" + (f": {output[-1]}" if output else "")
            ]
        )
    report.say(
        f"system-recipes: haproxy: started a new {service} that finishes pid {' '.join(old)}"
    )
    return reload.Outcome(done=[service])


def _without_finish(argv: list[str]) -> list[str]:
    """A command line without its ``-sf``/``-st`` pid lists (they name older processes)."""
    out, skipping = [], False
    for word in argv:
        if word in ("-sf", "-st"):
            skipping = True
            continue
        if skipping and word.isdigit():
            continue
        skipping = False
        out.append(word)
    return out


@reload.register("haproxy-restart")
def restart_haproxy(targets: list[str], settings: Settings) -> reload.Outcome:
    """The drop-in changed: systemd reads it at daemon-reload, but a running master keeps its
    command line across reloads, so a haproxy that does not read the include directory yet
    is restarted once (a stopped one stays stopped)."""
    if not systemd_running():
        return reload.Outcome(skipped={t: "systemd is not running" for t in targets})
    outcome = reload.Outcome()
    daemon = subprocess.run(["systemctl", "daemon-reload"], capture_output=True, text=True)
    if daemon.returncode:
        return reload.Outcome(problems=[f"systemctl daemon-reload exited {daemon.returncode}"])
    include = settings.layout.haproxy_include
    for service in targets:
        pid = _main_pid(service)
        if pid is None:
            outcome.skipped[service] = "not running"
        elif reads(command_line(pid), include):
            outcome.done.append(service)
        else:
            try_restart_unit(service, outcome)
    return outcome
