"""NRPE's check commands: what NRPE does to a command line (``$ARGn$`` and the other macros,
:func:`nrpe_macros`), how an include file of ``command[NAME]=...`` lines is read and judged
(NRPE has no configuration test mode: :func:`read_commands` reads a file as nrpe's
read_config_file() does, and a name defined twice in the include directory is refused), whether
the server below the root takes a query's arguments, and its reload (SIGHUP).

The server's own ``allowed_hosts`` (the ``nrpe-server`` recipe) and the restart it needs:
:mod:`.nrpe_server`.
"""

from __future__ import annotations

import os
import posixpath
import re

from system_recipes.core.declare.errors import shown
from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload, validate
from system_recipes.daemons.common import IncludeNames, directive, reload_service

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
    unpaired ``$`` gains a second one. Checked against a real NRPE in tests/recipes/test_nrpe.py."""
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
