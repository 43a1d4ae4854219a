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

import configparser
import contextlib
import os
import posixpath
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator

from supervisor import datatypes
from supervisor.options import ClientOptions, ServerOptions, UnhosedConfigParser, expand

from ..core import reload, report, run, validate
from ..core.errors import ConfigError, shown
from ..core.model import Check, FileSpec, PartSpec, Reload
from ..core.recipe import Recipe
from ..core.schema import (
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
from ..core.settings import Settings
from ._service import IncludeNames

# supervisor's own expansions in a [program:x] section (options.py, _processes_from_section)
EXPANSIONS = ("here", "program_name", "group_name", "host_node_name", "process_num", "numprocs")
EXPANSION = re.compile(r"%\((\w*)\)")
CONVERSION = re.compile(r"[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")
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
        Option(f"{stream}_logfile", LOGFILE,
               help=f"where the program's {stream} goes (supervisor's default: AUTO, a file in "
                    "supervisord's childlogdir); its directory must exist or be made by this run"),
        Option(f"{stream}_logfile_maxbytes", Line(BYTES, "bytes, with KB, MB or GB"),
               help=f"rotate the {stream} log at this size; 0: never (supervisor's default 50MB)"),
        Option(f"{stream}_logfile_backups", Integer(minimum=0),
               help=f"rotated {stream} logs to keep (supervisor's default 10)"),
        Option(f"{stream}_capture_maxbytes", Line(BYTES, "bytes, with KB, MB or GB"),
               help=f"{stream} capture mode buffer for events (supervisor's default 0: off)"),
        Option(f"{stream}_events_enabled", Bool(),
               help=f"emit PROCESS_LOG_{stream.upper()} events (supervisor's default false)"),
        Option(f"{stream}_syslog", Bool(),
               help=f"also send {stream} to syslog (supervisor's default false)"),
    ]


# Every option of supervisor.options.ServerOptions.processes_from_section, under its name
# there (tests/test_supervisor.py reads that function and fails when one is missing here).
PROGRAM_OPTIONS = [
    Option("command", Line(),
           help="the command line (required, unless `programs` is given); supervisor splits it "
                "like a shell but runs no shell"),
    Option("process_name", Line(),
           help="the process name (supervisor's default `%(program_name)s`); must contain "
                "`%(process_num)s` when numprocs > 1"),
    Option("numprocs", Integer(minimum=1), help="how many processes (supervisor's default 1)"),
    Option("numprocs_start", Integer(minimum=0),
           help="the first process_num (supervisor's default 0)"),
    Option("priority", Integer(), help="start order, low first (supervisor's default 999)"),
    Option("autostart", Bool(), default=True, help="start when supervisord starts"),
    Option("startsecs", Integer(minimum=0),
           help="seconds it must stay up to count as started (supervisor's default 1)"),
    Option("startretries", Integer(minimum=0),
           help="failed starts before FATAL (supervisor's default 3)"),
    Option("autorestart", Choice("true", "false", "unexpected"), default="true",
           help="restart when it exits: always (true), never, or on an exit code not in "
                "exitcodes (unexpected, supervisor's own default)"),
    Option("exitcodes", EXITCODES, help="expected exit codes (supervisor's default 0)"),
    Option("stopsignal", Choice(*SIGNALS), help="signal to stop it (supervisor's default TERM)"),
    Option("stopwaitsecs", Integer(minimum=0),
           help="seconds to wait after stopsignal before SIGKILL (supervisor's default 10)"),
    Option("stopasgroup", Bool(),
           help="send stopsignal to the whole process group (implies killasgroup)"),
    Option("killasgroup", Bool(), help="send SIGKILL to the whole process group"),
    Option("user", Account(), help="run as this user (must exist or be created by this run)"),
    Option("redirect_stderr", Bool(), help="send stderr to the stdout log"),
    *_log_options("stdout"),
    *_log_options("stderr"),
    Option("environment", Assignments(),
           help="environment variables, one KEY=value per line (written as KEY=\"value\")"),
    Option("directory", AbsolutePath(), help="chdir here before running the command"),
    Option("umask", Mode(), help="the process umask, octal (supervisor's default: inherited)"),
    Option("serverurl", Line(),
           help="the URL the program's supervisorctl talks to (SUPERVISOR_SERVER_URL), or AUTO"),
]
SUPERVISOR_NAMES = tuple(o.name for o in PROGRAM_OPTIONS)

def no_programs(values: Values) -> list[str]:
    """none: a single program"""
    return []


SCHEMA = Schema([
    Option("name", Name(), default=section_name,
           help="the program (or group) name and the file name, without the suffix"),
    Option("programs", SectionNames(), default=no_programs,
           help="write a [group:NAME] of these programs: names of sections (not parts) that "
                "hold program options; this section's program options are their defaults"),
    *PROGRAM_OPTIONS,
    force_option(),
])
MEMBER_SCHEMA = Schema([
    Option("name", Name(), default=section_name, help="the program name"),
    *PROGRAM_OPTIONS,
])


# -- rendering --------------------------------------------------------------------------------
def escape_percent(value: str, allowed: set[str]) -> str:
    """Double every ``%`` except supervisor expansions named in ``allowed``."""
    out: list[str] = []
    index = 0
    while True:
        found = value.find("%", index)
        if found < 0:
            return "".join(out) + value[index:]
        out.append(value[index:found])
        match = EXPANSION.match(value, found)
        if match is None:
            out.append("%%")
            index = found + 1
            continue
        name = match.group(1)
        conversion = CONVERSION.match(value, match.end())
        if name.startswith("ENV_") and name not in allowed:
            raise ValueError(f"%({name}) names a variable this program's environment does not "
                             "set (supervisord's own environment is not known here)")
        if name not in allowed:
            raise ValueError(f"%({name}) is not an expansion supervisor knows here")
        if conversion is None:
            raise ValueError(f"%({name}) has no conversion such as s or d")
        out.append(value[found:conversion.end()])
        index = conversion.end()


def environment_text(environment: dict[str, str]) -> str:
    """KEY="value",... as supervisor's dict_of_key_value_pairs reads it (quotes are literal
    in its non-POSIX shlex, so a value holding " is single-quoted instead)."""
    pairs = []
    for key, value in environment.items():
        quote = '"' if '"' not in value else "'"
        if quote in value:
            raise ValueError(f"{key}: a value cannot hold both ' and \"")
        pairs.append(f"{key}={quote}{value}{quote}")
    return ",".join(pairs)


def _dummy_expansions() -> dict:
    return {"here": "/h", "program_name": "p", "group_name": "g", "host_node_name": "n",
            "process_num": 0, "numprocs": 1}


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
            raise ConfigError(section, name, str(error),
                              "a value supervisor reads as written") from None
        lines.append((name, text))
    return lines


# include/uapi/linux/binfmts.h: one argument or environment string, with its NUL
MAX_ARG_STRLEN = 32 * 4096
# fs/exec.c bprm_stack_limits(): at most 3/4 of _STK_LIM (8 MiB), else a quarter of the stack
# rlimit, which is what sysconf(_SC_ARG_MAX) reports
STACK_SHARE = 8 * 1024 * 1024 // 4 * 3


def exec_limit() -> int:
    """The bytes of strings and pointers execve() accepts (argv, environment, file name)."""
    try:
        arg_max = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        arg_max = MAX_ARG_STRLEN
    return min(max(arg_max, MAX_ARG_STRLEN), STACK_SHARE)


def exec_size(section: str, program: str, group: str, values: dict) -> None:
    """Refuse a program the kernel would never start: supervisord splits the command like a
    shell (shlex) and execs it with its own environment plus the program's ``environment`` and
    its SUPERVISOR_* variables. A string over MAX_ARG_STRLEN, or all of them over the
    ARG_MAX of this machine, makes every start fail with E2BIG (checked against a real
    supervisord in tests). supervisord's own environment comes on top and is not counted."""
    try:
        words = shlex.split(values["command"])
    except ValueError:
        return  # supervisor's own parser says what is wrong with it
    for index, word in enumerate(words):
        size = len(word.encode()) + 1
        if size > MAX_ARG_STRLEN:
            raise ConfigError(section, "command", f"word {index + 1} ({shown(word[:20])}...) is "
                              f"{size - 1} bytes, the kernel passes at most "
                              f"{MAX_ARG_STRLEN - 1} (MAX_ARG_STRLEN): the program could "
                              "never start", "words under 128 KiB; pass more in a file")
    environment = {"SUPERVISOR_ENABLED": "1", "SUPERVISOR_PROCESS_NAME": program,
                   "SUPERVISOR_GROUP_NAME": group,
                   "SUPERVISOR_SERVER_URL": values.get("serverurl") or "unix:///run/supervisor.sock"}
    own = values.get("environment") or {}
    for key, value in own.items():
        size = len(f"{key}={value}".encode()) + 1
        if size > MAX_ARG_STRLEN:
            raise ConfigError(section, "environment", f"{key} is {size - 1} bytes with its "
                              f"name, the kernel passes at most {MAX_ARG_STRLEN - 1} "
                              "(MAX_ARG_STRLEN): the program could never start",
                              "values under 128 KiB; pass more in a file")
    limit = exec_limit()
    # the file name is copied too; each string has a NUL and a pointer on the new stack
    command = sum(len(w.encode()) + 1 + 8 for w in words) + len(words[0].encode()) + 1 \
        if words else 0
    supervisor_part = sum(len(f"{k}={v}".encode()) + 1 + 8 for k, v in environment.items())
    if command + supervisor_part > limit:
        raise ConfigError(section, "command", f"its {len(words)} words are {command} bytes "
                          f"for execve(), the kernel takes at most {limit} (ARG_MAX, with "
                          "the environment): the program could never start",
                          "a shorter command; pass more in a file")
    total = command + supervisor_part + sum(len(f"{k}={v}".encode()) + 1 + 8
                                            for k, v in own.items())
    if total > limit:
        raise ConfigError(section, "environment", f"the command and environment are {total} "
                          f"bytes for execve(), the kernel takes at most {limit} (ARG_MAX): "
                          "the program could never start",
                          "a shorter environment; pass more in a file")


def no_effect(section: str, values: dict) -> None:
    """Refuse an option supervisor would accept and then ignore."""
    if values.get("stopasgroup") and values.get("killasgroup") is False:
        raise ConfigError(section, "killasgroup", "false has no effect with stopasgroup = true "
                          "(supervisor then kills the whole group)", "killasgroup unset or true")
    if values.get("redirect_stderr"):
        for name in SUPERVISOR_NAMES:
            if name.startswith("stderr_") and values.get(name) is not None:
                raise ConfigError(section, name, "has no effect with redirect_stderr = true "
                                  "(stderr goes to the stdout log)",
                                  f"the stdout_ option, or no {name}")
    for stream in ("stdout", "stderr"):
        logfile = values.get(f"{stream}_logfile")
        maxbytes = values.get(f"{stream}_logfile_maxbytes")
        for name in (f"{stream}_logfile_maxbytes", f"{stream}_logfile_backups"):
            if values.get(name) is not None and logfile and logfile.upper() == "NONE":
                raise ConfigError(section, name, f"has no effect with {stream}_logfile = NONE",
                                  f"a {stream}_logfile, or no {name}")
        if values.get(f"{stream}_logfile_backups") is not None and maxbytes is not None and \
                re.fullmatch(r"0+(kb|mb|gb)?", maxbytes, re.I):
            raise ConfigError(section, f"{stream}_logfile_backups", "has no effect with "
                              f"{stream}_logfile_maxbytes = 0 (the log is never rotated)",
                              f"a {stream}_logfile_maxbytes above 0, or no backups")


def _check_environment(escaped: dict[str, str], text: str) -> None:
    """Read the environment back with supervisor's own parser."""
    dummy = _dummy_expansions()
    try:
        got = datatypes.dict_of_key_value_pairs(expand(text, dummy, "environment"))
    except ValueError as error:
        raise ValueError(f"supervisor cannot read it: {error}") from None
    for key, value in escaped.items():
        wanted = expand(value, dummy, key)
        if got.get(key) != wanted:
            raise ValueError(f"{key}: supervisor would read {shown(got.get(key))}, not {shown(wanted)}")


def read_back(section: str, text: str, sections: dict[str, list[tuple[str, str]]]) -> None:
    """The rendered file, read by supervisor's parser, holds exactly the values written
    (`` ;`` or `` #`` would silently cut a value short)."""
    parser = UnhosedConfigParser()
    parser.read_string(text)
    for header, lines in sections.items():
        for key, value in lines:
            got = parser.get(header, key, fallback=None)
            if got != value:
                raise ConfigError(section, key, f"supervisor would read {shown(got)} "
                                  "(' ;' and ' #' start a comment in supervisor's files)",
                                  "a value without ' ;' or ' #'")


# -- the recipe -------------------------------------------------------------------------------
class Recipe(Recipe):
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
                raise ConfigError(self.name, "programs", "two members have the same name",
                                  "one name per program")
        else:
            if not own["command"]:
                raise ConfigError(self.name, "command", "missing required option",
                                  "a single line")
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
            Reload("supervisor", group_of(p, suffix)) for p in leaving if p.endswith(suffix)]
        spec.force = values.force
        spec.files.append(FileSpec(path=path, content=content, mode=0o644,
                                   checks=[Check("supervisor", (self.settings.root, leaving))],
                                   reloads=reloads))
        spec.removal_reloads.append(Reload("supervisor", values.name))

    def _member(self, member: str, defaults: dict) -> tuple[str, str, dict]:
        if member not in self.buildout:
            raise ConfigError(self.name, "programs", f"no section [{member}]",
                              "names of sections holding program options")
        raw = {k: v for k, v in self.buildout[member].items() if k != "recipe"}
        parsed = MEMBER_SCHEMA.parse(member, raw)
        options = dict(defaults)
        options.update({k: parsed[k] for k in raw if k in SUPERVISOR_NAMES})
        if not options["command"]:
            raise ConfigError(member, "command", "missing required option", "a single line")
        return member, parsed.name, options


def group_of(path: str, suffix: str) -> str:
    return posixpath.basename(path)[: -len(suffix)]


# -- the check: supervisor's own parser, in-process -------------------------------------------
def top_level_groups(parser: configparser.RawConfigParser) -> dict[str, str]:
    """{group name: section} as supervisord forms groups from these sections."""
    grouped: set[str] = set()
    result: dict[str, str] = {}
    for section in parser.sections():
        if section.startswith("group:"):
            result[section.split(":", 1)[1]] = section
            members = parser.get(section, "programs", fallback="")
            grouped |= {m.strip() for m in members.split(",") if m.strip()}
    for section in parser.sections():
        kind, _, name = section.partition(":")
        if kind in ("program", "fcgi-program", "eventlistener") and name not in grouped:
            result.setdefault(name, section)
    return result


@contextlib.contextmanager
def directories_below(root: str, planned: set[str]) -> Iterator[None]:
    """supervisor checks that a log file's directory exists on *this* machine; judge it below
    the install root instead, counting directories this run is about to make."""
    original = datatypes.existing_dirpath

    def existing_dirpath(value):
        directory = posixpath.dirname(value)
        if not directory or directory in planned or \
                os.path.isdir(os.path.join(root, directory.lstrip("/"))):
            return value
        raise ValueError(f"The directory named as part of the path {value} does not exist")

    datatypes.existing_dirpath = existing_dirpath
    try:
        yield
    finally:
        datatypes.existing_dirpath = original


def parse_program_file(text: str, path: str, root: str, planned: set[str]) -> str | None:
    """What supervisord would say reading this include file, or None when it accepts it."""
    parser = UnhosedConfigParser()
    try:
        parser.read_string(text, source=path)
    except configparser.Error as error:
        return str(error).splitlines()[0]
    here = posixpath.dirname(path)
    parser.expand_here(here)
    parser.section_to_file = {section: path for section in parser.sections()}
    for section in parser.sections():
        # accounts are checked below the root (and may be created by this run)
        parser.remove_option(section, "user")
    options = ServerOptions()
    options.configfile, options.here, options.environ_expansions = path, here, {}
    parser.expansions = {}
    try:
        with directories_below(root, planned):
            options.process_groups_from_parser(parser)
    except ValueError as error:
        return str(error)
    return None


@validate.register
class SupervisorValidator(validate.Validator):
    """supervisor's own parser on each file, plus names another include file defines."""

    name = "supervisor"
    tools = ()

    def check(self, items: list[validate.Item]) -> dict[int, str]:
        errors: dict[int, str] = {}
        active = run.current()
        planned = {d.path for spec in (active.declared.values() if active else ())
                   for d in spec.directories}
        skip = {item.file.path for item in items} | {
            p for item in items for p in item.check.arguments[1]}
        names = IncludeNames(skip, groups_on_disk)
        for index, item in enumerate(items):
            root = item.check.arguments[0]
            text = item.file.content.decode("utf-8", "replace")
            problem = parse_program_file(text, item.file.path, root, planned)
            if problem:
                errors[index] = f"supervisor would refuse it: {problem}"
                continue
            parser = UnhosedConfigParser()
            parser.read_string(text)
            groups = top_level_groups(parser)
            clash = names.clash(root, item.file.path, groups)
            if clash:
                errors[index] = (f"[{groups[clash[0]]}]: {clash[0]} is also defined in "
                                 f"{clash[1]} (supervisord would merge or replace them)")
        return errors


def groups_on_disk(path: str) -> list[str]:
    """The group names a supervisor include file on disk defines (unreadable: none)."""
    parser = UnhosedConfigParser()
    try:
        parser.read(path)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return []
    return list(top_level_groups(parser))


# -- the reload -------------------------------------------------------------------------------
def daemon_listening(config: str) -> tuple[bool, str]:
    """(running, server url) from supervisorctl's own reading of the main config."""
    options = ClientOptions()
    try:
        options.realize(args=["-c", config], doc="")
    except (SystemExit, ValueError) as error:
        return False, f"cannot read {config}: {error}"
    url = options.serverurl
    if url.startswith("unix://"):
        family, address = socket.AF_UNIX, url[len("unix://"):]
    else:
        host, _, port = url.split("://", 1)[-1].rstrip("/").rpartition(":")
        family, address = socket.AF_INET, (host or "localhost", int(port or 80))
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(address)
        except OSError as error:
            return False, f"{url}: {error.strerror or error}"
    return True, url


def _problems(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines()
            if line.strip().lower().startswith("error")]


@reload.register("supervisor")
def reload_supervisor(targets: list[str], settings: Settings) -> reload.Outcome | list[str]:
    config = settings.layout.supervisor_config
    running, where = daemon_listening(config)
    if not running:
        return reload.Outcome(skipped={t: f"supervisord is not running: {where}" for t in targets})
    ctl = validate.which("supervisorctl") or shutil.which("supervisorctl")
    if ctl is None:
        return ["supervisorctl is not installed: cannot update " + " ".join(targets)]
    reread = subprocess.run([ctl, "-c", config, "reread"], capture_output=True, text=True)
    problems = _problems(reread.stdout + reread.stderr)
    if reread.returncode or problems:
        return [f"supervisorctl reread: {(problems or [reread.stdout.strip()])[0]}"]
    update = subprocess.run([ctl, "-c", config, "update", *targets],
                            capture_output=True, text=True)
    output = update.stdout + update.stderr
    include, suffix = settings.layout.supervisor_include, settings.layout.supervisor_suffix
    problems = []
    for line in _problems(output):
        gone = re.fullmatch(r"ERROR: no such group: (\S+)", line)
        # a dropped group supervisord never loaded: there is nothing to stop
        if gone and not os.path.exists(posixpath.join(include, gone.group(1) + suffix)):
            continue
        problems.append(f"supervisorctl update: {line}")
    if update.returncode and not problems and "no such group" not in output:
        problems.append(f"supervisorctl update exited {update.returncode}: {output.strip()}")
    for line in output.splitlines():
        if line.strip() and not line.lower().startswith("error"):
            report.say(f"system-recipes: supervisor: {line.strip()}")
    return problems


@reload.register("supervisor-restart", covered_by="supervisor")
def restart_supervisor(targets: list[str], settings: Settings) -> reload.Outcome:
    """Restart the running processes of each program group (its configuration file or package
    changed, which ``supervisorctl update`` does not see); a stopped one stays stopped."""
    config = settings.layout.supervisor_config
    running, where = daemon_listening(config)
    if not running:
        return reload.Outcome(skipped={t: f"supervisord is not running: {where}" for t in targets})
    ctl = validate.which("supervisorctl") or shutil.which("supervisorctl")
    if ctl is None:
        return reload.Outcome(problems=["supervisorctl is not installed: cannot restart "
                                        + " ".join(targets)])
    outcome = reload.Outcome()
    for group in targets:
        status = subprocess.run([ctl, "-c", config, "status", f"{group}:*"],
                                capture_output=True, text=True)
        if not re.search(r"\sRUNNING\s", status.stdout):
            outcome.skipped[group] = "not running"
            continue
        result = subprocess.run([ctl, "-c", config, "restart", f"{group}:*"],
                                capture_output=True, text=True)
        problems = _problems(result.stdout + result.stderr)
        if result.returncode or problems:
            outcome.problems.append(f"supervisorctl restart {group}: "
                                    + (problems or [result.stdout.strip()])[0])
        else:
            outcome.done.append(group)
    return outcome
