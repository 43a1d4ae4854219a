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

import posixpath
import re
import shlex
from dataclasses import dataclass

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import (
    Lines,
    Name,
    Option,
    Schema,
    Values,
    force_option,
    section_name,
)
from system_recipes.core.declare.specs import Check, FileSpec, PartSpec, Reload
from system_recipes.daemons.nrpe import (
    ARG_MACRO,
    CHECK_NAME,
    MAX_ARGUMENTS,
    MAX_LINE,
    escape_dollars,
    nrpe_macros,
    takes_arguments,
)
from system_recipes.daemons.programs import ProgramContext

PLUGIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
CHECK_SYNTAX = "CHECK PLUGIN [ARGUMENT...] [warning=W] [critical=C]"
THRESHOLDS = {"warning": "-w", "critical": "-c"}


SCHEMA = Schema(
    [
        Option(
            "name",
            Name(),
            default=section_name,
            help="the file name in the NRPE include directory, without .cfg",
        ),
        Option(
            "checks",
            Lines(),
            required=True,
            help=f"one check per line: {CHECK_SYNTAX}; split like a shell command line; a "
            "plugin without a slash is found in the layout's plugin directory",
        ),
        force_option(),
    ]
)


@dataclass(frozen=True)
class NrpeCheck:
    name: str
    plugin: str  # host path
    arguments: tuple[str, ...]

    @property
    def command(self) -> str:
        """The command line as NRPE reads it: quoted for its shell, ``$`` written ``$$``."""
        return shlex.join([self.plugin, *(escape_dollars(word) for word in self.arguments)])


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
        raise ValueError(
            f"check name {shown(name)} is not a plain name (letters, digits, '_', '.', "
            "'-'; no ']', '=' or spaces)"
        )
    path = _plugin_path(plugin, plugins)
    arguments = _arguments(name, rest)
    for word in arguments:
        _check_argument(name, word, arguments_allowed)
    check = NrpeCheck(name, path, tuple(arguments))
    if not any(ARG_MACRO.search(word) for word in arguments) and nrpe_macros(
        check.command
    ) != shlex.join([path, *arguments]):
        raise ValueError(f"{name}: NRPE would change the command line")  # read back
    length = len(f"command[{name}]={check.command}".encode())
    if length > MAX_LINE:
        raise ValueError(
            f"{name}: the command line is {length} bytes, NRPE reads at most {MAX_LINE}"
        )
    return check


def _plugin_path(plugin: str, plugins: str) -> str:
    """The plugin's host path: an absolute path as given, a plain name in ``plugins``."""
    if "/" in plugin:
        if not plugin.startswith("/") or ".." in plugin.split("/"):
            raise ValueError(f"plugin {shown(plugin)} is not an absolute path without '..'")
        return posixpath.normpath(plugin)
    if PLUGIN_NAME.fullmatch(plugin):
        return posixpath.join(plugins, plugin)
    raise ValueError(f"plugin {shown(plugin)} is not a plugin name")


def _arguments(name: str, words: list[str]) -> list[str]:
    """The plugin's arguments: a threshold ``KEY=VALUE`` becomes its option and value (each
    once), any other word is passed as it is."""
    arguments: list[str] = []
    seen: set[str] = set()
    for word in words:
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
    return arguments


def _check_argument(name: str, word: str, arguments_allowed: bool | str) -> None:
    """An argument holds no line break, and a ``$ARGn$`` in it is one NRPE fills."""
    if any(c in word for c in "\n\r\0"):
        raise ValueError(f"{name}: an argument holds a line break")
    for macro in ARG_MACRO.findall(word):
        if arguments_allowed is not True:
            raise ValueError(
                f"{name}: {shown(macro)} would reach the plugin as an empty "
                f"string: {arguments_allowed or 'NRPE takes no arguments'}"
            )
        number = macro[4:-1]
        if len(number) > 2 or not 1 <= int(number) <= MAX_ARGUMENTS:
            raise ValueError(
                f"{name}: {shown(macro)} is always empty (NRPE fills $ARG1$ "
                f"to $ARG{MAX_ARGUMENTS}$)"
            )


class Recipe(BaseRecipe):
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
                raise ConfigError(
                    self.name,
                    "checks",
                    f"check {check.name} is defined twice",
                    "each check name once",
                )
            seen.add(check.name)
            checks.append(check)
        if not checks:
            raise ConfigError(self.name, "checks", "no checks", CHECK_SYNTAX)
        content = self.render("nrpe.cfg.j2", {"section": self.name, "checks": checks})
        include = self.layout.nrpe_include
        path = posixpath.join(include, values.name + ".cfg")
        service = Reload("nrpe", self.layout.nrpe_service)
        spec.force = values.force
        # each plugin must be installed below the root: judged by daemons.programs
        plugins: dict[str, str] = {}  # plugin -> the first check naming it, for the error
        for check in checks:
            plugins.setdefault(check.plugin, f"{check.name}: plugin ")
        spec.files.append(
            FileSpec(
                path=path,
                content=content,
                mode=0o644,
                # the plugins first: a missing one is the file's first (and only) error line
                checks=[
                    *(
                        Check("program", ProgramContext(plugin, "checks", label=label))
                        for plugin, label in plugins.items()
                    ),
                    Check("nrpe"),
                ],
                reloads=[service],
            )
        )
        spec.removal_reloads.append(service)
