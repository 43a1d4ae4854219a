"""supervisor: how it reads a program file (its own parser, in-process, with the log
directories judged below the install root), the validator that runs it on each include file
and refuses a group another file defines, the reload (``supervisorctl reread`` and ``update``)
and the restart of changed groups, and the rendering helpers of the recipe (``%`` escapes, the
environment, the read-back of what was written).

Whether the kernel can exec a program's command and environment is in
:mod:`.supervisor_exec`."""

from __future__ import annotations

import configparser
import contextlib
import os
import posixpath
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.settings import Settings
from system_recipes.core.hooks import reload, validate
from system_recipes.core.plan import report
from system_recipes.daemons.common import IncludeNames


def _options():
    """supervisor.options, imported when a program file is read or supervisord is asked: it
    brings supervisor's HTTP server (medusa) with it, which a no-op run does not need."""
    import supervisor.options

    return supervisor.options


def _datatypes():
    import supervisor.datatypes

    return supervisor.datatypes


#: supervisor's reading of a program file, by content: the recipe reads back what it rendered,
#: and the validator reads the same text again when the file changed
PARSES = validate.ContentCache()


class ProgramFile:
    """What supervisor's parser read from a program file, as plain values: the cache keeps this,
    not the parser (a parser per file was 4.7 MB at 1000 programs)."""

    def __init__(self, parser: configparser.RawConfigParser):
        # items() of a section holds the [DEFAULT] values too, as the parser's get() does
        self.values = {
            section: dict(parser.items(section, raw=True)) for section in parser.sections()
        }

    def sections(self) -> list[str]:
        return list(self.values)

    def get(self, section: str, option: str, fallback: str | None = None) -> str | None:
        # option names lowered, as RawConfigParser.optionxform (supervisor keeps it) does; a
        # bound optionxform here would keep the whole parser alive
        return self.values.get(section, {}).get(option.lower(), fallback)


def parsed(text: str) -> ProgramFile:
    """supervisor's reading of ``text``, shared: callers only read it."""

    def parse() -> ProgramFile:
        parser = _options().UnhosedConfigParser()
        parser.read_string(text)
        return ProgramFile(parser)

    return PARSES.get(parse, text)


def group_of(path: str, suffix: str) -> str:
    return posixpath.basename(path)[: -len(suffix)]


# -- the check: supervisor's own parser, in-process -------------------------------------------
def top_level_groups(parser: configparser.RawConfigParser | ProgramFile) -> dict[str, str]:
    """{group name: section} as supervisord forms groups from these sections."""
    grouped: set[str] = set()
    result: dict[str, str] = {}
    for section in parser.sections():
        if section.startswith("group:"):
            result[section.split(":", 1)[1]] = section
            members = parser.get(section, "programs", fallback="") or ""
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
    datatypes = _datatypes()
    original = datatypes.existing_dirpath

    def existing_dirpath(value):
        directory = posixpath.dirname(value)
        if (
            not directory
            or directory in planned
            or os.path.isdir(os.path.join(root, directory.lstrip("/")))
        ):
            return value
        raise ValueError(f"The directory named as part of the path {value} does not exist")

    datatypes.existing_dirpath = existing_dirpath
    try:
        yield
    finally:
        datatypes.existing_dirpath = original


def parse_program_file(text: str, path: str, root: str, planned: set[str]) -> str | None:
    """What supervisord would say reading this include file, or None when it accepts it."""
    parser = _options().UnhosedConfigParser()
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
    options = _options().ServerOptions()
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

    def check(
        self, items: list[validate.Item], context: validate.ValidationContext
    ) -> dict[int, str]:
        errors: dict[int, str] = {}
        root, planned = context.root, set(context.planned_directories)
        names = IncludeNames({item.file.path for item in items} | context.leaving, groups_on_disk)
        for index, item in enumerate(items):
            text = item.file.content.decode("utf-8", "replace")
            problem = parse_program_file(text, item.file.path, root, planned)
            if problem:
                errors[index] = f"supervisor would refuse it: {problem}"
                continue
            groups = top_level_groups(parsed(text))
            clash = names.clash(root, item.file.path, groups)
            if clash:
                errors[index] = (
                    f"[{groups[clash[0]]}]: {clash[0]} is also defined in "
                    f"{clash[1]} (supervisord would merge or replace them)"
                )
        return errors


def groups_on_disk(path: str) -> list[str]:
    """The group names a supervisor include file on disk defines (unreadable: none)."""
    parser = _options().UnhosedConfigParser()
    try:
        parser.read(path)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return []
    return list(top_level_groups(parser))


# -- the reload -------------------------------------------------------------------------------
def daemon_listening(config: str) -> tuple[bool, str]:
    """(running, server url) from supervisorctl's own reading of the main config."""
    options = _options().ClientOptions()
    try:
        options.realize(args=["-c", config], doc="")
    except (SystemExit, ValueError) as error:
        return False, f"cannot read {config}: {error}"
    url = options.serverurl
    if url.startswith("unix://"):
        family, address = socket.AF_UNIX, url[len("unix://") :]
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
    return [
        line.strip() for line in output.splitlines() if line.strip().lower().startswith("error")
    ]


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
    update = subprocess.run([ctl, "-c", config, "update", *targets], capture_output=True, text=True)
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
        return reload.Outcome(
            problems=["supervisorctl is not installed: cannot restart " + " ".join(targets)]
        )
    outcome = reload.Outcome()
    for group in targets:
        status = subprocess.run(
            [ctl, "-c", config, "status", f"{group}:*"], capture_output=True, text=True
        )
        if not re.search(r"\sRUNNING\s", status.stdout):
            outcome.skipped[group] = "not running"
            continue
        result = subprocess.run(
            [ctl, "-c", config, "restart", f"{group}:*"], capture_output=True, text=True
        )
        problems = _problems(result.stdout + result.stderr)
        if result.returncode or problems:
            outcome.problems.append(
                f"supervisorctl restart {group}: " + (problems or [result.stdout.strip()])[0]
            )
        else:
            outcome.done.append(group)
    return outcome


# supervisor's own expansions in a [program:x] section (options.py, _processes_from_section)
EXPANSIONS = ("here", "program_name", "group_name", "host_node_name", "process_num", "numprocs")


EXPANSION = re.compile(r"%\((\w*)\)")


CONVERSION = re.compile(r"[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


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
            raise ValueError(
                f"%({name}) names a variable this program's environment does not "
                "set (supervisord's own environment is not known here)"
            )
        if name not in allowed:
            raise ValueError(f"%({name}) is not an expansion supervisor knows here")
        if conversion is None:
            raise ValueError(f"%({name}) has no conversion such as s or d")
        out.append(value[found : conversion.end()])
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
    return {
        "here": "/h",
        "program_name": "p",
        "group_name": "g",
        "host_node_name": "n",
        "process_num": 0,
        "numprocs": 1,
    }


def _check_environment(escaped: dict[str, str], text: str) -> None:
    """Read the environment back with supervisor's own parser."""
    dummy, expand = _dummy_expansions(), _options().expand
    try:
        got = _datatypes().dict_of_key_value_pairs(expand(text, dummy, "environment"))
    except ValueError as error:
        raise ValueError(f"supervisor cannot read it: {error}") from None
    for key, value in escaped.items():
        wanted = expand(value, dummy, key)
        if got.get(key) != wanted:
            raise ValueError(
                f"{key}: supervisor would read {shown(got.get(key))}, not {shown(wanted)}"
            )


def read_back(section: str, text: str, sections: dict[str, list[tuple[str, str]]]) -> None:
    """The rendered file, read by supervisor's parser, holds exactly the values written
    (`` ;`` or `` #`` would silently cut a value short)."""
    parser = parsed(text)
    for header, lines in sections.items():
        for key, value in lines:
            got = parser.get(header, key, fallback=None)
            if got != value:
                raise ConfigError(
                    section,
                    key,
                    f"supervisor would read {shown(got)} "
                    "(' ;' and ' #' start a comment in supervisor's files)",
                    "a value without ' ;' or ' #'",
                )
