"""``system_recipes:runscript``: how a service is started at boot.

``kind = systemd`` writes the unit ``/etc/systemd/system/NAME.service``; ``kind = sysv`` writes
an LSB init script ``/etc/init.d/NAME`` (mode 0755). ``kind = auto`` (the default) picks
systemd when the install root has systemd (``lib/systemd/systemd`` or
``usr/lib/systemd/systemd`` exists below the root), else sysv.

``command`` is one line, split like a shell command line (quote arguments that hold spaces;
no pipes, redirections or variables: it is not run by a shell). The program is an absolute
path, or a bare name found in ``/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin``
below the root; it must exist and be executable there. Each argument reaches the program
exactly as written: they are quoted again for systemd (``%`` and ``$`` too) and for the shell.
As everywhere in buildout, write ``$$`` for a literal ``$``. ``name`` is a plain service name:
no ``/``, no ``.service`` suffix, no ``@`` (template units are not supported).

With ``enable = true`` (the default) the service starts at boot: for systemd the link
``/etc/systemd/system/multi-user.target.wants/NAME.service`` (what ``systemctl enable`` makes,
matching the unit's ``WantedBy=multi-user.target``); for sysv the links ``/etc/rcN.d/S20NAME``
(runlevels 2-5) and ``K20NAME`` (0, 1, 6) to ``../init.d/NAME``. The links are owned like
files: changed or removed with the part.

The init script runs the command in the background as ``user`` (and ``group``) in
``working-directory`` (default ``/``) with ``environment``, records its pid in
``/run/NAME.pid`` and answers ``start``, ``stop`` (``stop-signal``, then SIGKILL after 30 s),
``restart``, ``force-reload`` and ``status`` (from the pidfile: 0 running, 1 dead with a
pidfile, 3 stopped). It uses ``start-stop-daemon`` when the host has it, else ``setsid`` and
``su``, and starts the command with every signal at its default, as systemd does, where ``env``
has ``--default-signal`` (coreutils 8.31 or later): a caller that ignores SIGINT (a shell's
background job) does not pass that on to the service. The command's output is discarded (log
to a file or syslog from the program itself).
``restart``, ``type`` other than simple/exec and ``extra`` are systemd-only: with ``kind =
sysv`` they are refused rather than ignored (an init script never restarts anything; ``restart
= no`` is accepted), and so is an ``after`` or ``wants`` unit an LSB header cannot name (only
services and the targets standing for LSB facilities can be).

Validation: every changed unit of a run is checked by one ``systemd-analyze verify --man=no``
(unknown keys or sections, bad values and a missing program are errors, though that tool exits
0 on most of them); init scripts by ``sh -n``. A complaint about a line of the unit names the
option that wrote it: ``[web] extra: systemd-analyze: Unknown key 'Bogus' ... (line 14 of
/etc/systemd/system/web.service: 'Bogus=1')``.

Reload, at the end of a run that changed something, only when writing the real root: with
systemd running (``/run/systemd/system`` exists) one ``systemctl daemon-reload``, then
``systemctl try-restart`` of the changed units (a dropped part's unit is stopped); without
systemd this is said and skipped. A changed init script is restarted when its service is
running (``status`` says so); a dropped part's running service is stopped through its pidfile.

Example::

    [shop-service]
    recipe = system_recipes:runscript
    command = /usr/bin/python3 -m http.server --bind 127.0.0.1 8080
    user = nobody
    working-directory = /tmp
    environment =
        PYTHONUNBUFFERED=1
    after = network-online.target
    wants = network-online.target
    description = shop web server
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import signal

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import (
    AbsolutePath,
    Account,
    Assignments,
    Bool,
    Choice,
    Line,
    Lines,
    Name,
    Option,
    Schema,
    Values,
    force_option,
    section_name,
)
from system_recipes.core.declare.specs import PartSpec
from system_recipes.daemons.systemd import UnitNames, has_systemd
from system_recipes.recipes.runscript_files import systemd_unit, sysv_script

SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
RESTART = ("no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always")
TYPES = ("simple", "exec", "forking", "notify", "oneshot")
# a program path that needs no quoting anywhere (and cannot be read as env's NAME=value)
PROGRAM = re.compile(r"/[A-Za-z0-9_@+:,./-]*")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def the_name(values: Values) -> str:
    """the name"""
    return values["name"]


SCHEMA = Schema(
    [
        Option(
            "name",
            Name(),
            default=section_name,
            help="the service name: NAME.service or /etc/init.d/NAME",
        ),
        Option(
            "kind",
            Choice("auto", "systemd", "sysv"),
            default="auto",
            help="systemd unit or LSB init script; auto: systemd when lib/systemd/systemd or "
            "usr/lib/systemd/systemd exists below the root, else sysv",
        ),
        Option(
            "command",
            Line(),
            required=True,
            help="the program and its arguments, one line split like a shell command line "
            "(not run by a shell); the program must exist below the root",
        ),
        Option("user", Account(), default="root", help="the account the command runs as"),
        Option("group", Account(), default=None, help="its group (default: the user's own)"),
        Option(
            "working-directory",
            AbsolutePath(),
            default=None,
            help="the command's working directory (default /)",
        ),
        Option(
            "environment",
            Assignments(),
            default={},
            help="environment variables of the command, one KEY=value per line",
        ),
        Option(
            "after",
            UnitNames(),
            default=[],
            help="units to start after (sysv: services and the targets that stand for LSB "
            "facilities become Should-Start)",
        ),
        Option("wants", UnitNames(), default=[], help="units to start along (systemd Wants=)"),
        Option(
            "restart",
            Choice(*RESTART),
            default="on-failure",
            help="systemd Restart= (systemd only)",
        ),
        Option(
            "stop-signal",
            Line(
                pattern=r"(SIG)?[A-Z][A-Z0-9]*",
                expected="a signal name such as SIGTERM, SIGINT or SIGQUIT",
            ),
            default="SIGTERM",
            help="the signal that asks the service to stop",
        ),
        Option(
            "enable",
            Bool(),
            default=True,
            help="start at boot: the multi-user.target.wants link (systemd) or rc links (sysv)",
        ),
        Option("description", Line(), default=the_name, help="one line saying what the service is"),
        Option(
            "type",
            Choice(*TYPES),
            default="simple",
            help="systemd Type=; sysv runs the command in the background itself, so only "
            "simple and exec",
        ),
        Option(
            "extra",
            Lines(),
            default=[],
            help="raw Key=value lines added to the unit's [Service] section, still checked by "
            "systemd-analyze (systemd only)",
        ),
        force_option(),
    ]
)


# -- the recipe -------------------------------------------------------------------------------
class Recipe(BaseRecipe):
    """A systemd unit or an LSB init script, and the links that enable it: the values are
    checked here, the files written by :mod:`.runscript_files` (this module's docstring is the
    recipe's reference page)."""

    schema = SCHEMA
    recipe_name = "runscript"

    def build(self, spec: PartSpec, values: Values) -> None:
        self._check_text(values)
        name = values.name
        if name.endswith(".service") or "@" in name:
            raise ConfigError(
                self.name,
                "name",
                f"{shown(name)} is not a plain service name",
                "a name without '.service' or '@' (template units are not supported)",
            )
        kind = values.kind
        if kind == "auto":
            kind = "systemd" if has_systemd(self.settings.root) else "sysv"
        argv = self._argv(values.command)
        signal_name = self._signal(values)
        spec.force = values.force
        spec.needs_accounts.append(("user", values.user, None))
        if values.group:
            spec.needs_accounts.append(("group", "root", values.group))
        if kind == "systemd":
            systemd_unit(self, spec, values, argv, signal_name)
        else:
            sysv_script(self, spec, values, argv, signal_name)

    def _check_text(self, values: Values) -> None:
        for option in self.schema.options:
            value = values.get(option)
            items = (
                value
                if isinstance(value, list)
                else list(value.values())
                if isinstance(value, dict)
                else [value]
            )
            for item in items:
                if isinstance(item, str) and CONTROL.search(item):
                    raise ConfigError(
                        self.name,
                        option,
                        "holds a control character",
                        self.schema.options[option].type.expected,
                    )
                if isinstance(item, str) and item.endswith("\\"):
                    # a trailing backslash continues a unit file line onto the next one
                    raise ConfigError(
                        self.name,
                        option,
                        "ends with a backslash",
                        "a value without a trailing backslash",
                    )

    def _argv(self, command: str) -> list[str]:
        expected = "PROGRAM [ARGUMENT...], the program installed below the root"
        try:
            words = shlex.split(command)
        except ValueError as error:
            raise ConfigError(self.name, "command", str(error).lower(), expected) from None
        if not words:
            raise ConfigError(self.name, "command", "is empty", expected)
        program = words[0]
        if "/" not in program:
            found = [
                posixpath.join(d, program)
                for d in SEARCH_PATH
                if os.path.isfile(self.settings.target(posixpath.join(d, program)))
            ]
            if not found:
                raise ConfigError(
                    self.name,
                    "command",
                    f"{shown(program)} is not found in {':'.join(SEARCH_PATH)}{self._below()}",
                    expected,
                )
            program = found[0]
        if not PROGRAM.fullmatch(program) or ".." in program.split("/"):
            raise ConfigError(
                self.name,
                "command",
                f"program {shown(program)} is not a plain absolute path",
                "an absolute path of letters, digits and _@+:,.-",
            )
        # that it exists and is executable is a check of the run (daemons.programs)
        return [posixpath.normpath(program), *words[1:]]

    def _below(self) -> str:
        return "" if self.settings.root == "/" else f" below {self.settings.root}"

    def _signal(self, values: Values) -> str:
        name = values.stop_signal.removeprefix("SIG")
        if (
            name in ("KILL", "STOP")
            or not hasattr(signal.Signals, "SIG" + name)
            or name.startswith("RT")
        ):
            raise ConfigError(
                self.name,
                "stop-signal",
                f"{shown(values.stop_signal)} is not a signal a service can handle",
                "a signal name such as SIGTERM, SIGINT or SIGQUIT",
            )
        return name
