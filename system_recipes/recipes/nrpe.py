"""``system_recipes:nrpe``: NRPE command definitions in the layout's ``nrpe.d``.

Writes ``NAME.cfg`` (``name`` defaults to the section name) into the NRPE include directory
(``/etc/nagios/nrpe.d`` on Debian, ``/etc/nrpe.d`` on Red Hat), one ``command[CHECK]=...`` line
per line of ``checks``. Each check is one line, split like a shell command line (quote
arguments that hold spaces):

    CHECK PLUGIN [ARGUMENT...] [warning=W] [critical=C]

``warning=W`` and ``critical=C`` become ``-w W`` and ``-c C``. A plugin without a slash is
looked up in the layout's plugin directory (``/usr/lib/nagios/plugins`` on Debian); a path is
taken as it is. The plugin must exist below the root and be executable. The arguments are
quoted again for the shell NRPE runs the command with, and every ``$`` is written ``$$``
(NRPE reads ``$...$`` as a macro: ``'a$b'`` would reach the plugin as ``a$b$``), so the plugin
gets exactly the words written here (write ``$$`` for a ``$``, as everywhere in buildout).
``$ARGn$`` is NRPE's macro for the n-th argument of the query and is written as it is, but only
where NRPE fills it: the server below the root must set ``dont_blame_nrpe=1`` (in ``nrpe.cfg``
or a file it includes) and its ``nrpe`` be built with command arguments -- Debian's is not, so
there ``$ARGn$`` would always reach the plugin as an empty string, and it is refused.
NRPE has no configuration check of its own: the file is checked by a parser that
reads it the way NRPE does, and a check name that another file of the include directory
already defines is refused (NRPE reads that directory in no defined order). When the file
changes (or the part is dropped), the running NRPE daemon is reloaded once at the end of the
run (``systemctl reload`` under systemd, else SIGHUP to the pid in ``pid_file``); a daemon
that is not running is reported and skipped.

Example::

    [app-nrpe]
    recipe = system_recipes:nrpe
    checks =
        check_app_http check_http -H 127.0.0.1 -p 8080 -u /health warning=2 critical=5
        check_app_disk check_disk -p /var/lib/app warning=20% critical=10%
        check_app_queue /opt/app/bin/check-queue --max 100
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from dataclasses import dataclass

from ..core import reload, validate
from ..core.errors import ConfigError, shown
from ..core.model import Check, FileSpec, PartSpec, Reload
from ..core.recipe import Recipe
from ..core.schema import Lines, Name, Option, Schema, Values, force_option, section_name
from ..core.settings import Settings
from ..daemons.common import IncludeNames, directive, reload_service

CHECK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
PLUGIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
CHECK_SYNTAX = "CHECK PLUGIN [ARGUMENT...] [warning=W] [critical=C]"
# NRPE reads its configuration with fgets() into a buffer of MAX_INPUT_BUFFER (2048) bytes:
# a longer line is cut in two and the rest is read as a line of its own.
MAX_LINE = 2047
THRESHOLDS = {"warning": "-w", "critical": "-c"}
# nrpe.c MAX_COMMAND_ARGUMENTS: $ARG1$ ... $ARG16$ take the arguments of a query
MAX_ARGUMENTS = 16
ARG_MACRO = re.compile(r"(\$ARG[0-9]+\$)")
NRPE_PROGRAMS = ("/usr/sbin/nrpe", "/usr/bin/nrpe")
# what nrpe.c logs, built with --enable-command-args, for arguments dont_blame_nrpe refuses
ARGUMENTS_BUILT_IN = b"Request contained command arguments, but argument option is not enabled"



SCHEMA = Schema([
    Option("name", Name(), default=section_name,
           help="the file name in the NRPE include directory, without .cfg"),
    Option("checks", Lines(), required=True,
           help=f"one check per line: {CHECK_SYNTAX}; split like a shell command line; a "
                "plugin without a slash is found in the layout's plugin directory"),
    force_option(),
])


@dataclass(frozen=True)
class NrpeCheck:
    name: str
    plugin: str  # host path
    arguments: tuple[str, ...]

    @property
    def command(self) -> str:
        """The command line as NRPE reads it: quoted for its shell, ``$`` written ``$$``."""
        return shlex.join([self.plugin, *(escape_dollars(word) for word in self.arguments)])


def escape_dollars(word: str) -> str:
    """``$`` -> ``$$`` (NRPE's macro processing turns it back into one ``$``), except in the
    ``$ARGn$`` macros, which are meant for NRPE."""
    return "".join(part if ARG_MACRO.fullmatch(part) else part.replace("$", "$$")
                   for part in ARG_MACRO.split(word))


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
            number = re.match(r"\s*[+-]?[0-9]*", piece[3:]).group()  # atoi()
            number = int(number) if number.strip().lstrip("+-") else 0
            if 1 <= number <= min(len(arguments), MAX_ARGUMENTS):
                out.append(arguments[number - 1])
        elif piece == "":
            out.append("$")
        else:
            out.append(f"${piece}$")
    return "".join(out)


def parse_check(line: str, plugins: str, arguments_allowed: bool | str = False) -> NrpeCheck:
    """One ``checks`` line; raises ValueError with the problem. ``arguments_allowed``: True
    when ``$ARGn$`` receives the query's arguments, else why not (see :func:`takes_arguments`)."""
    try:
        words = shlex.split(line, comments=False, posix=True)
    except ValueError as error:
        raise ValueError(f"{shown(line)}: {str(error).lower()}") from None
    if len(words) < 2:
        raise ValueError(f"{shown(line)} has no plugin")
    name, plugin, rest = words[0], words[1], words[2:]
    if not CHECK_NAME.fullmatch(name):
        raise ValueError(f"check name {shown(name)} is not a plain name (letters, digits, '_', '.', "
                         "'-'; no ']', '=' or spaces)")
    if "/" in plugin:
        if not plugin.startswith("/") or ".." in plugin.split("/"):
            raise ValueError(f"plugin {shown(plugin)} is not an absolute path without '..'")
        path = posixpath.normpath(plugin)
    elif PLUGIN_NAME.fullmatch(plugin):
        path = posixpath.join(plugins, plugin)
    else:
        raise ValueError(f"plugin {shown(plugin)} is not a plugin name")
    arguments: list[str] = []
    seen: set[str] = set()
    for word in rest:
        key, sep, value = word.partition("=")
        if sep and key in THRESHOLDS:
            if key in seen:
                raise ValueError(f"{name}: {key}= is given twice")
            if not value:
                raise ValueError(f"{name}: {key}= has no value")
            seen.add(key)
            arguments += [THRESHOLDS[key], value]
        else:
            arguments.append(word)
    for word in arguments:
        if any(c in word for c in "\n\r\0"):
            raise ValueError(f"{name}: an argument holds a line break")
        for macro in ARG_MACRO.findall(word):
            if arguments_allowed is not True:
                raise ValueError(f"{name}: {shown(macro)} would reach the plugin as an empty "
                                 f"string: {arguments_allowed or 'NRPE takes no arguments'}")
            number = macro[4:-1]
            if len(number) > 2 or not 1 <= int(number) <= MAX_ARGUMENTS:
                raise ValueError(f"{name}: {shown(macro)} is always empty (NRPE fills $ARG1$ "
                                 f"to $ARG{MAX_ARGUMENTS}$)")
    check = NrpeCheck(name, path, tuple(arguments))
    if not any(ARG_MACRO.search(word) for word in arguments) and \
            nrpe_macros(check.command) != shlex.join([path, *arguments]):
        raise ValueError(f"{name}: NRPE would change the command line")  # read back
    length = len(f"command[{name}]={check.command}".encode())
    if length > MAX_LINE:
        raise ValueError(f"{name}: the command line is {length} bytes, NRPE reads at most "
                         f"{MAX_LINE}")
    return check


class Recipe(Recipe):
    """NRPE commands in the include directory."""

    schema = SCHEMA
    recipe_name = "nrpe"

    def build(self, spec: PartSpec, values: Values) -> None:
        checks: list[NrpeCheck] = []
        seen: set[str] = set()
        arguments = None
        for line in values.checks:
            if arguments is None and "$ARG" in line:
                arguments = takes_arguments(self.settings)
            try:
                check = parse_check(line, self.layout.nagios_plugins, arguments or False)
            except ValueError as error:
                raise ConfigError(self.name, "checks", str(error), CHECK_SYNTAX) from None
            if check.name in seen:
                raise ConfigError(self.name, "checks", f"check {check.name} is defined twice",
                                  "each check name once")
            seen.add(check.name)
            self._check_plugin(check)
            checks.append(check)
        if not checks:
            raise ConfigError(self.name, "checks", "no checks", CHECK_SYNTAX)
        content = self.render("nrpe.cfg.j2", {"section": self.name, "checks": checks})
        include = self.layout.nrpe_include
        path = posixpath.join(include, values.name + ".cfg")
        leaving = self.earlier_files(path)
        service = Reload("nrpe", self.layout.nrpe_service)
        spec.force = values.force
        spec.files.append(FileSpec(
            path=path, content=content, mode=0o644,
            checks=[Check("nrpe", (self.settings.root, leaving))], reloads=[service]))
        spec.removal_reloads.append(service)

    def _check_plugin(self, check: NrpeCheck) -> None:
        real = self.settings.target(check.plugin)
        where = "" if self.settings.root == "/" else f" below {self.settings.root}"
        if not os.path.isfile(real):
            raise ConfigError(self.name, "checks", f"{check.name}: plugin {check.plugin} does "
                              f"not exist{where}", "an installed, executable plugin")
        if not os.stat(real).st_mode & 0o111:
            raise ConfigError(self.name, "checks", f"{check.name}: plugin {check.plugin} is not "
                              "executable", "an installed, executable plugin")


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

    def check(self, items: list[validate.Item], context: validate.ValidationContext) -> dict[int, str]:
        errors: dict[int, str] = {}
        skip = {item.file.path for item in items} | {
            path for item in items for path in item.check.arguments[1]}
        names = IncludeNames(skip, commands_on_disk)
        for index, item in enumerate(items):
            commands, problems = read_commands(item.file.content.decode("utf-8", "replace"))
            if problems:
                errors[index] = "NRPE would not read this file: " + "; ".join(problems)
                continue
            clash = names.clash(item.check.arguments[0], item.file.path, commands)
            if clash:
                errors[index] = (f"command {clash[0]} is also defined in {clash[1]} (NRPE reads "
                                 "its include directory in no defined order)")
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
