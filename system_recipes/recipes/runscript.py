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
``su``. The command's output is discarded (log to a file or syslog from the program itself).
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

from ..core import validate
from ..core.errors import ConfigError, shown
from ..core.model import Check, FileSpec, LinkSpec, PartSpec, Reload
from ..core.recipe import Recipe as BaseRecipe
from ..core.schema import (
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
from ..daemons.systemd import (
    UnitNames,
    has_systemd,
    specifiers,
    systemd_assignment,
    systemd_word,
)
from ..daemons.sysv import (
    FACILITIES,
    pidfile,
)

SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
RESTART = ("no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always")
TYPES = ("simple", "exec", "forking", "notify", "oneshot")
# a program path that needs no quoting anywhere (and cannot be read as env's NAME=value)
PROGRAM = re.compile(r"/[A-Za-z0-9_@+:,./-]*")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
START_LEVELS, STOP_LEVELS = ("2", "3", "4", "5"), ("0", "1", "6")


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
    """A systemd unit or an LSB init script, and the links that enable it."""

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
            self._systemd(spec, values, argv, signal_name)
        else:
            self._sysv(spec, values, argv, signal_name)

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

    # -- systemd ------------------------------------------------------------------------------
    def _systemd(self, spec: PartSpec, values: Values, argv: list[str], signal_name: str) -> None:
        for line in values.extra:
            key, sep, _ = line.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()):
                raise ConfigError(
                    self.name,
                    "extra",
                    f"{shown(line)} is not a Key=value setting",
                    "Key=value lines of the [Service] section",
                )
        directory = self.layout.systemd_directory
        unit = f"{values.name}.service"
        path = posixpath.join(directory, unit)
        context = {
            "section": self.name,
            "description": specifiers(values.description),
            "after": " ".join(values.after),
            "wants": " ".join(values.wants),
            "type": values.type,
            "exec_start": " ".join(systemd_word(w) for w in argv),
            "user": values.user if values.user != "root" else None,
            "group": values.group,
            "working_directory": specifiers(values.working_directory or ""),
            "environment": [systemd_assignment(k, v) for k, v in values.environment.items()],
            "restart": values.restart,
            "kill_signal": "SIG" + signal_name,
            "extra": values.extra,
        }
        content = self.render("runscript-systemd.service.j2", context)
        service = Reload("systemd", unit)
        origins = validate.trace(content, unit_claims(context))
        spec.files.append(
            FileSpec(
                path=path,
                content=content,
                mode=0o644,
                # the program first: its absence is the one error line
                checks=[Check("program", (argv[0], "command")), Check("systemd-unit", (origins,))],
                reloads=[service],
            )
        )
        if values.enable:
            spec.links.append(
                LinkSpec(posixpath.join(directory, "multi-user.target.wants", unit), path)
            )
        spec.removal_reloads.append(service)

    # -- sysv ---------------------------------------------------------------------------------
    def _sysv(self, spec: PartSpec, values: Values, argv: list[str], signal_name: str) -> None:
        for option, wrong in (
            ("type", values.type not in ("simple", "exec")),
            ("extra", bool(values.extra)),
        ):
            if wrong:
                raise ConfigError(
                    self.name,
                    option,
                    "is systemd-only, but kind is sysv",
                    "kind = systemd, or no "
                    + option
                    + (" other than simple or exec" if option == "type" else ""),
                )
        if "restart" in self.options and values.restart != "no":
            # an init script starts the command once: nothing would ever restart it
            raise ConfigError(
                self.name,
                "restart",
                f"restart = {values.restart} has no effect "
                "with kind = sysv: an init script never restarts the service",
                "kind = systemd, restart = no, or supervisor for a service that must be restarted",
            )
        program = argv[0]
        if values.environment:
            argv = ["/usr/bin/env", *(f"{k}={v}" for k, v in values.environment.items()), *argv]
        dependencies = []
        for option in ("after", "wants"):
            for unit in values[option]:
                base, _, suffix = unit.rpartition(".")
                item = FACILITIES.get(unit, base if suffix == "service" else None)
                if item is None:  # an init script has nothing to say it with
                    raise ConfigError(
                        self.name,
                        option,
                        f"{unit} has no effect with kind = "
                        "sysv (LSB headers name only services and facilities)",
                        "services (NAME.service) or " + ", ".join(FACILITIES),
                    )
                if item not in dependencies:
                    dependencies.append(item)
        script = posixpath.join(self.layout.init_directory, values.name)
        content = self.render(
            "runscript-sysv.sh.j2",
            {
                "section": self.name,
                "name": values.name,
                "description": values.description,
                "should_start": " ".join(dependencies),
                "q": shlex.quote,
                "pidfile": pidfile(values.name),
                "user": values.user,
                "group": values.group or "",
                "working_directory": values.working_directory or "/",
                "stop_signal": signal_name,
                "argv": shlex.join(argv),
            },
        )
        spec.files.append(
            FileSpec(
                path=script,
                content=content,
                mode=0o755,
                checks=[Check("program", (program, "command")), Check("init-script-sh")],
                reloads=[Reload("sysv", values.name)],
            )
        )
        if values.enable:
            rc = self.layout.rc_directory
            for levels, letter in ((START_LEVELS, "S"), (STOP_LEVELS, "K")):
                for level in levels:
                    directory = posixpath.join(rc, f"rc{level}.d")
                    spec.links.append(
                        LinkSpec(
                            posixpath.join(directory, f"{letter}20{values.name}"),
                            posixpath.relpath(script, directory),
                        )
                    )
        spec.removal_reloads.append(Reload("sysv", values.name))


def unit_claims(context: dict) -> list[tuple[str, str]]:
    """The unit's lines and the options that wrote them, in the template's order."""
    claims = [("description", f"Description={context['description']}")]
    for option, key, value in (
        ("after", "After", context["after"]),
        ("wants", "Wants", context["wants"]),
        ("type", "Type", context["type"]),
        ("command", "ExecStart", context["exec_start"]),
        ("user", "User", context["user"]),
        ("group", "Group", context["group"]),
        ("working-directory", "WorkingDirectory", context["working_directory"]),
    ):
        if value:
            claims.append((option, f"{key}={value}"))
    claims += [("environment", f"Environment={a}") for a in context["environment"]]
    claims += [
        ("restart", f"Restart={context['restart']}"),
        ("stop-signal", f"KillSignal={context['kill_signal']}"),
    ]
    return claims + [("extra", line) for line in context["extra"]]
