"""``system_recipes:supervisor``: a supervisor program (or group of programs).

Writes ``NAME.conf`` into ``/etc/supervisor/conf.d`` on Debian (``NAME.ini`` into
``/etc/supervisord.d`` on Red Hat); ``name`` defaults to the section name and is the program
name. Every ``[program:x]`` option supervisor knows is an option here, under supervisor's own
name (``stdout_logfile``, ``stopasgroup``, ...); what is not set is not written, so
supervisor's default applies -- except ``autostart`` and ``autorestart``, which default to
``true`` (supervisor's own ``autorestart`` default is ``unexpected``: a program that exits 0
would stay down). ``environment`` is given as lines ``KEY=value`` and written in supervisor's
``KEY="value",...`` syntax.

A group: ``programs`` names other sections (not parts) that hold program options; the file
then holds ``[group:NAME]`` and one ``[program:x]`` per listed section (``x`` is that section's
``name``, by default its section name). Options set in the group's own section are defaults
for every member, and ``priority`` is also the group's.

Percent signs: supervisor expands ``%(name)s`` in every value. A ``%(name)s`` with one of
supervisor's names (``program_name``, ``process_num``, ``numprocs``, ``group_name``,
``host_node_name``, ``here``) is passed through for supervisor to expand, and so is
``%(ENV_KEY)s`` for a KEY of this program's ``environment`` (supervisord's own environment is
not known when the file is written, so other ``ENV_`` names are refused); any other ``%(...)``
is refused, and every other ``%`` is written as ``%%`` so it reaches the program as it is
(``date +%s`` works). A value supervisor would read differently from what was meant (`` ;``
and `` #`` start a comment in its files) is refused.

Options supervisor would read and then ignore are refused: ``stderr_*`` with
``redirect_stderr = true``, ``killasgroup = false`` with ``stopasgroup = true``, log rotation
options of a log that is ``NONE`` or never rotated (``*_logfile_maxbytes = 0``).

A program the kernel could never start is refused: supervisord splits ``command`` like a shell
and execs it with the program's ``environment`` (and its own), and execve() fails with E2BIG
on a word or ``KEY=value`` of 128 KiB or more (MAX_ARG_STRLEN), or when all of them pass the
ARG_MAX of this machine (a quarter of the stack limit, 2 MiB by default): the error names
``command`` or ``environment``. supervisord's own environment comes on top of what is counted.

The file is checked in-process by supervisor's own parser (``ServerOptions``, as supervisord
reads an include file: a bad value gets supervisor's message), log directories must exist
below the root or be made by this run, ``user`` must exist or be created by this run, and a
program or group name that another file of the include directory defines is refused. After
the run, ``supervisorctl reread`` and ``supervisorctl update NAME`` for exactly the changed
(or dropped) groups: a changed program is restarted, a dropped one stopped and removed. When
supervisord is not running this is said and skipped.

Example::

    # the account and its directories: a deployment part of the same run makes them
    [app]
    recipe = system_recipes:deployment

    [app-server]
    recipe = system_recipes:supervisor
    command = /opt/app/bin/server --port 8080
    user = ${app:user}
    directory = ${app:lib-directory}
    environment =
        APP_ENV=production
        LANG=C.UTF-8
    stdout_logfile = ${app:log-directory}/server.log
    redirect_stderr = true
    stopasgroup = true
"""

from __future__ import annotations

import posixpath
import re

from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import (
    AbsolutePath,
    Account,
    Assignments,
    Bool,
    Choice,
    Integer,
    Line,
    Mode,
    Name,
    Option,
    OptionType,
    Schema,
    Values,
    force_option,
    section_name,
)
from system_recipes.core.declare.specs import Check, FileSpec, PartSpec, Reload
from system_recipes.daemons.supervisor import (
    EXPANSIONS,
    _check_environment,
    environment_text,
    escape_percent,
    group_of,
    read_back,
)
from system_recipes.daemons.supervisor_exec import exec_size

BYTES = r"(?i)\d+(kb|mb|gb)?"
SIGNALS = ("TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2")
LOGFILE = Line(r"/[^\0]*|(?i:auto|none)", "an absolute path, AUTO or NONE")
EXITCODES = Line(r"\s*\d{1,3}(\s*,\s*\d{1,3})*\s*", "exit codes 0-255, separated by commas")


class SectionNames(OptionType):
    """Section names separated by white space or newlines, like buildout's ``parts``."""

    expected = "section names separated by spaces or newlines"

    def parse(self, text: str) -> list[str]:
        return [Name().parse(word) for word in text.split()]


def _log_options(stream: str) -> list[Option]:
    return [
        Option(
            f"{stream}_logfile",
            LOGFILE,
            help=f"where the program's {stream} goes (supervisor's default: AUTO, a file in "
            "supervisord's childlogdir); its directory must exist or be made by this run",
        ),
        Option(
            f"{stream}_logfile_maxbytes",
            Line(BYTES, "bytes, with KB, MB or GB"),
            help=f"rotate the {stream} log at this size; 0: never (supervisor's default 50MB)",
        ),
        Option(
            f"{stream}_logfile_backups",
            Integer(minimum=0),
            help=f"rotated {stream} logs to keep (supervisor's default 10)",
        ),
        Option(
            f"{stream}_capture_maxbytes",
            Line(BYTES, "bytes, with KB, MB or GB"),
            help=f"{stream} capture mode buffer for events (supervisor's default 0: off)",
        ),
        Option(
            f"{stream}_events_enabled",
            Bool(),
            help=f"emit PROCESS_LOG_{stream.upper()} events (supervisor's default false)",
        ),
        Option(
            f"{stream}_syslog",
            Bool(),
            help=f"also send {stream} to syslog (supervisor's default false)",
        ),
    ]


# Every option of supervisor.options.ServerOptions.processes_from_section, under its name
# there (tests/recipes/test_supervisor.py reads that function and fails when one is missing here).
PROGRAM_OPTIONS = [
    Option(
        "command",
        Line(),
        help="the command line (required, unless `programs` is given); supervisor splits it "
        "like a shell but runs no shell",
    ),
    Option(
        "process_name",
        Line(),
        help="the process name (supervisor's default `%(program_name)s`); must contain "
        "`%(process_num)s` when numprocs > 1",
    ),
    Option("numprocs", Integer(minimum=1), help="how many processes (supervisor's default 1)"),
    Option(
        "numprocs_start", Integer(minimum=0), help="the first process_num (supervisor's default 0)"
    ),
    Option("priority", Integer(), help="start order, low first (supervisor's default 999)"),
    Option("autostart", Bool(), default=True, help="start when supervisord starts"),
    Option(
        "startsecs",
        Integer(minimum=0),
        help="seconds it must stay up to count as started (supervisor's default 1)",
    ),
    Option(
        "startretries",
        Integer(minimum=0),
        help="failed starts before FATAL (supervisor's default 3)",
    ),
    Option(
        "autorestart",
        Choice("true", "false", "unexpected"),
        default="true",
        help="restart when it exits: always (true), never, or on an exit code not in "
        "exitcodes (unexpected, supervisor's own default)",
    ),
    Option("exitcodes", EXITCODES, help="expected exit codes (supervisor's default 0)"),
    Option("stopsignal", Choice(*SIGNALS), help="signal to stop it (supervisor's default TERM)"),
    Option(
        "stopwaitsecs",
        Integer(minimum=0),
        help="seconds to wait after stopsignal before SIGKILL (supervisor's default 10)",
    ),
    Option(
        "stopasgroup",
        Bool(),
        help="send stopsignal to the whole process group (implies killasgroup)",
    ),
    Option("killasgroup", Bool(), help="send SIGKILL to the whole process group"),
    Option("user", Account(), help="run as this user (must exist or be created by this run)"),
    Option("redirect_stderr", Bool(), help="send stderr to the stdout log"),
    *_log_options("stdout"),
    *_log_options("stderr"),
    Option(
        "environment",
        Assignments(),
        help='environment variables, one KEY=value per line (written as KEY="value")',
    ),
    Option("directory", AbsolutePath(), help="chdir here before running the command"),
    Option("umask", Mode(), help="the process umask, octal (supervisor's default: inherited)"),
    Option(
        "serverurl",
        Line(),
        help="the URL the program's supervisorctl talks to (SUPERVISOR_SERVER_URL), or AUTO",
    ),
]
SUPERVISOR_NAMES = tuple(o.name for o in PROGRAM_OPTIONS)


def no_programs(values: Values) -> list[str]:
    """none: a single program"""
    return []


SCHEMA = Schema(
    [
        Option(
            "name",
            Name(),
            default=section_name,
            help="the program (or group) name and the file name, without the suffix",
        ),
        Option(
            "programs",
            SectionNames(),
            default=no_programs,
            help="write a [group:NAME] of these programs: names of sections (not parts) that "
            "hold program options; this section's program options are their defaults",
        ),
        *PROGRAM_OPTIONS,
        force_option(),
    ]
)
MEMBER_SCHEMA = Schema(
    [
        Option("name", Name(), default=section_name, help="the program name"),
        *PROGRAM_OPTIONS,
    ]
)


def program_lines(section: str, values: dict) -> list[tuple[str, str]]:
    """The ``key = value`` lines of one [program:x] in schema order; raises ConfigError."""
    environment = values.get("environment") or {}
    allowed = set(EXPANSIONS) | {f"ENV_{key}" for key in environment}
    lines = []
    for name in SUPERVISOR_NAMES:
        value = values.get(name)
        if value is None:
            continue
        try:
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif name == "umask":
                text = f"{value:03o}"
            elif isinstance(value, int):
                text = str(value)
            elif name == "environment":
                if not value:
                    continue
                escaped = {k: escape_percent(v, set(EXPANSIONS)) for k, v in value.items()}
                text = environment_text(escaped)
                _check_environment(escaped, text)
            else:
                text = escape_percent(value, allowed)
        except ValueError as error:
            raise ConfigError(
                section, name, str(error), "a value supervisor reads as written"
            ) from None
        lines.append((name, text))
    return lines


def no_effect(section: str, values: dict) -> None:
    """Refuse an option supervisor would accept and then ignore."""
    if values.get("stopasgroup") and values.get("killasgroup") is False:
        raise ConfigError(
            section,
            "killasgroup",
            "false has no effect with stopasgroup = true (supervisor then kills the whole group)",
            "killasgroup unset or true",
        )
    if values.get("redirect_stderr"):
        for name in SUPERVISOR_NAMES:
            if name.startswith("stderr_") and values.get(name) is not None:
                raise ConfigError(
                    section,
                    name,
                    "has no effect with redirect_stderr = true (stderr goes to the stdout log)",
                    f"the stdout_ option, or no {name}",
                )
    for stream in ("stdout", "stderr"):
        logfile = values.get(f"{stream}_logfile")
        maxbytes = values.get(f"{stream}_logfile_maxbytes")
        for name in (f"{stream}_logfile_maxbytes", f"{stream}_logfile_backups"):
            if values.get(name) is not None and logfile and logfile.upper() == "NONE":
                raise ConfigError(
                    section,
                    name,
                    f"has no effect with {stream}_logfile = NONE",
                    f"a {stream}_logfile, or no {name}",
                )
        if (
            values.get(f"{stream}_logfile_backups") is not None
            and maxbytes is not None
            and re.fullmatch(r"0+(kb|mb|gb)?", maxbytes, re.I)
        ):
            raise ConfigError(
                section,
                f"{stream}_logfile_backups",
                f"has no effect with {stream}_logfile_maxbytes = 0 (the log is never rotated)",
                f"a {stream}_logfile_maxbytes above 0, or no backups",
            )


# -- the recipe -------------------------------------------------------------------------------
class Recipe(BaseRecipe):
    """A supervisor program or group file in the layout's include directory."""

    schema = SCHEMA
    recipe_name = "supervisor"

    def build(self, spec: PartSpec, values: Values) -> None:
        own = {name: values[name] for name in SUPERVISOR_NAMES}
        programs: list[tuple[str, str, dict]] = []  # (section, program name, values)
        if values.programs:
            for member in values.programs:
                programs.append(self._member(member, own))
            names = [name for _, name, _ in programs]
            if len(set(names)) != len(names):
                raise ConfigError(
                    self.name, "programs", "two members have the same name", "one name per program"
                )
        else:
            if not own["command"]:
                raise ConfigError(self.name, "command", "missing required option", "a single line")
            programs.append((self.name, values.name, own))
        sections: dict[str, list[tuple[str, str]]] = {}
        if values.programs:
            group = [("programs", ",".join(name for _, name, _ in programs))]
            if own["priority"] is not None:
                group.append(("priority", str(own["priority"])))
            sections[f"group:{values.name}"] = group
        for section, name, options in programs:
            no_effect(section, options)
            sections[f"program:{name}"] = program_lines(section, options)
            exec_size(section, name, values.name, options)
            if options["user"]:
                spec.needs_accounts.append(("user", options["user"], None))
        content = self.render("supervisor.conf.j2", {"part": self.name, "sections": sections})
        read_back(self.name, content.decode(), sections)

        include, suffix = self.layout.supervisor_include, self.layout.supervisor_suffix
        path = posixpath.join(include, values.name + suffix)
        leaving = self.earlier_files(path)
        # a renamed part: the old group goes away in the same supervisorctl update
        reloads = [Reload("supervisor", values.name)] + [
            Reload("supervisor", group_of(p, suffix)) for p in leaving if p.endswith(suffix)
        ]
        spec.force = values.force
        spec.files.append(
            FileSpec(
                path=path,
                content=content,
                mode=0o644,
                checks=[Check("supervisor")],
                reloads=reloads,
            )
        )
        spec.removal_reloads.append(Reload("supervisor", values.name))

    def _member(self, member: str, defaults: dict) -> tuple[str, str, dict]:
        if member not in self.buildout:
            raise ConfigError(
                self.name,
                "programs",
                f"no section [{member}]",
                "names of sections holding program options",
            )
        raw = {k: v for k, v in self.buildout[member].items() if k != "recipe"}
        parsed = MEMBER_SCHEMA.parse(member, raw)
        options = dict(defaults)
        options.update({k: parsed[k] for k in raw if k in SUPERVISOR_NAMES})
        if not options["command"]:
            raise ConfigError(member, "command", "missing required option", "a single line")
        return member, parsed.name, options
