"""``system_recipes:nagios``: Nagios object definitions on the monitoring server.

Writes ``NAME.cfg`` (``name`` defaults to the section name) into the layout's object directory
(``/etc/nagios4/conf.d`` on Debian, ``/etc/nagios/conf.d`` on Red Hat), which the stock main
configuration reads with ``cfg_dir``. One line per object; lines with spaces in a field are
split like a shell command line (quote the field):

- ``hosts``: ``HOST ADDRESS [ALIAS...]`` -- a host using the ``host-use`` template;
- ``commands``: ``COMMAND COMMAND-LINE...`` -- the rest of the line is the command line,
  as Nagios reads it (``$USER1$``, ``$HOSTADDRESS$``, ``$ARG1$`` ...);
- ``services``: ``HOST DESCRIPTION CHECK-COMMAND...`` -- the rest of the line is the check
  command as Nagios reads it, ``command[!argument...]``;
- ``nrpe-checks``: ``HOST NRPE-CHECK [DESCRIPTION...]`` -- a service that runs the agent's
  NRPE command through ``nrpe-command`` (``check_nrpe!NRPE-CHECK``); the description defaults
  to the check name;
- ``extra``: raw object definitions, appended as they are.

The file is checked with the real ``nagios4 -v`` (``nagios -v`` on Red Hat) on a copy of the
main configuration in a temporary directory that reads the object directory as it will be after
the run: one process for every changed file of a run. A service that names an undefined host or
command stops the run before anything is written, naming the section and the option that wrote
the object (``[monitor] services: nagios4 -v: Could not find any host matching 'shop9' (line
20 of ...)``). ``host-use``, ``service-use`` and ``nrpe-command`` set where there is nothing
for them to apply to are refused. When the file changes (or
the part is dropped), the running Nagios is reloaded once at the end of the run (``systemctl
reload`` under systemd, else SIGHUP to the pid in ``lock_file``); a Nagios that is not running
is reported and skipped.

Example::

    [monitor-shop]
    recipe = system_recipes:nagios
    hosts =
        shop1 10.0.0.5 Shop application server
    services =
        shop1 "Shop HTTP" check_http!-p 8080 -u /health
    nrpe-checks =
        shop1 check_app_disk
        shop1 check_app_queue Shop queue length
"""

from __future__ import annotations

import io
import posixpath
import re
import shlex
from dataclasses import dataclass

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.rules import UNSET, AtLeastOneOf, refused_with
from system_recipes.core.declare.schema import (
    Line,
    Lines,
    Name,
    Option,
    Schema,
    Text,
    Values,
    force_option,
    section_name,
)
from system_recipes.core.declare.specs import Check, FileSpec, PartSpec, Reload
from system_recipes.core.hooks import validate
from system_recipes.daemons.nagios import NagiosContext, main_config

OBJECT_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,199}"
OBJECT = re.compile(OBJECT_NAME)
ADDRESS = re.compile(r"[A-Za-z0-9_.:%-]{1,253}")
# nagios.cfg illegal_object_name_chars, plus ';' (starts a comment) and '\\'
DESCRIPTION = re.compile(
    r"[^`~!$%^&*|'\"<>?,()=;\\\s]([^`~!$%^&*|'\"<>?,()=;\\]*"
    r"[^`~!$%^&*|'\"<>?,()=;\\\s])?"
)
FREE_TEXT = re.compile(r"[^;\\\x00-\x1f]+")
HOSTS = "HOST ADDRESS [ALIAS...]"
COMMANDS = "COMMAND COMMAND-LINE..."
SERVICES = "HOST DESCRIPTION CHECK-COMMAND... (quote a description with spaces)"
NRPE = "HOST NRPE-CHECK [DESCRIPTION...]"
NAME_RULE = "letters, digits, '_', '.', '@', ':', '-'"


SCHEMA = Schema(
    [
        Option(
            "name",
            Name(),
            default=section_name,
            help="the file name in the Nagios object directory, without .cfg",
        ),
        Option("hosts", Lines(), default=[], help=f"one host per line: {HOSTS}"),
        Option("commands", Lines(), default=[], help=f"one command per line: {COMMANDS}"),
        Option("services", Lines(), default=[], help=f"one service per line: {SERVICES}"),
        Option(
            "nrpe-checks",
            Lines(),
            default=[],
            help=f"one service per line run by the agent's NRPE: {NRPE}",
        ),
        Option(
            "nrpe-command",
            Line(pattern=OBJECT_NAME, expected="a Nagios command name"),
            default="check_nrpe",
            help="the Nagios command that runs an NRPE check (Debian's nagios-nrpe-plugin "
            "defines check_nrpe)",
        ),
        Option(
            "host-use",
            Line(pattern=OBJECT_NAME, expected="a host template name"),
            default="linux-server",
            help="the host template of every host",
        ),
        Option(
            "service-use",
            Line(pattern=OBJECT_NAME, expected="a service template name"),
            default="generic-service",
            help="the service template of every service",
        ),
        Option(
            "extra", Text(), default="", help="raw Nagios object definitions appended to the file"
        ),
        force_option(),
    ],
    rules=[
        AtLeastOneOf(
            ("hosts", "commands", "services", "nrpe-checks", "extra"), "defines no objects"
        ),
        *(
            refused_with(
                option,
                when=(source, UNSET),
                problem=f"has no effect: no {source}",
                expected=f"{option} only with what it applies to",
            )
            for option, source in (
                ("host-use", "hosts"),
                ("service-use", "services"),
                ("nrpe-command", "nrpe-checks"),
            )
        ),
    ],
)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    alias: str


@dataclass(frozen=True)
class Command:
    name: str
    line: str


@dataclass(frozen=True)
class NagiosService:
    host: str
    description: str
    command: str


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as error:
        raise ValueError(f"{shown(line)}: {str(error).lower()}") from None


def _name(kind: str, value: str) -> str:
    if not OBJECT.fullmatch(value):
        raise ValueError(f"{kind} {shown(value)} is not a Nagios object name ({NAME_RULE})")
    return value


def _description(value: str) -> str:
    if not DESCRIPTION.fullmatch(value) or len(value) > 200:
        raise ValueError(
            f"service description {shown(value)} holds a character Nagios refuses "
            "(`~!$%^&*|'\"<>?,()=;\\ or a line break)"
        )
    return value


def _free_text(kind: str, value: str) -> str:
    if not FREE_TEXT.fullmatch(value):
        raise ValueError(
            f"{kind} {shown(value)} holds ';' (a Nagios comment), '\\' or a control character"
        )
    return value


def parse_host(line: str) -> Host:
    words = _words(line)
    if len(words) < 2:
        raise ValueError(f"{shown(line)} has no address")
    name = _name("host", words[0])
    if not ADDRESS.fullmatch(words[1]):
        raise ValueError(f"address {shown(words[1])} is not a host name or IP address")
    alias = " ".join(words[2:]) or name
    return Host(name, words[1], _free_text("alias", alias))


def parse_command(line: str) -> Command:
    name, rest = (re.split(r"\s+", line.strip(), maxsplit=1) + [""])[:2]
    if not rest.strip():
        raise ValueError(f"{shown(line)} has no command line")
    return Command(_name("command", name.strip()), _free_text("command line", rest.strip()))


def check_command(value: str) -> str:
    name, bang, arguments = value.partition("!")
    _name("check command", name)
    if bang:
        _free_text("check command arguments", arguments)
    return value


def _head(line: str, count: int) -> tuple[list[str], str]:
    """The first ``count`` shell words of ``line`` and the rest of it, as written."""
    stream = io.StringIO(line)  # kept: what the lexer has not read is the rest of the line
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words = []
    try:
        for _ in range(count):
            word = lexer.get_token()
            if word is None:
                break
            words.append(word)
    except ValueError as error:
        raise ValueError(f"{shown(line)}: {str(error).lower()}") from None
    return words, stream.read().strip()


def parse_service(line: str) -> NagiosService:
    words, rest = _head(line, 2)
    if len(words) < 2 or not rest:
        raise ValueError(f"{shown(line)} has no check command")
    return NagiosService(_name("host", words[0]), _description(words[1]), check_command(rest))


def parse_nrpe(line: str, nrpe_command: str) -> NagiosService:
    words = _words(line)
    if len(words) < 2:
        raise ValueError(f"{shown(line)} has no NRPE check")
    host, check = _name("host", words[0]), words[1]
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", check):
        raise ValueError(f"NRPE check {shown(check)} is not a plain name")
    description = " ".join(words[2:]) or check
    return NagiosService(host, _description(description), f"{nrpe_command}!{check}")


class Recipe(BaseRecipe):
    """Nagios hosts, commands and services in the object directory."""

    schema = SCHEMA
    recipe_name = "nagios"

    def build(self, spec: PartSpec, values: Values) -> None:
        hosts = self._parse(values, "hosts", parse_host, HOSTS)
        commands = self._parse(values, "commands", parse_command, COMMANDS)
        services = self._parse(values, "services", parse_service, SERVICES)
        nrpe_services = self._parse(
            values, "nrpe-checks", lambda line: parse_nrpe(line, values.nrpe_command), NRPE
        )
        services += nrpe_services
        extra = values.extra.strip("\n")
        if "\0" in extra:
            raise ConfigError(self.name, "extra", "contains a NUL byte", "object definitions")
        self._unique(hosts, "hosts", lambda h: h.name, "host")
        self._unique(commands, "commands", lambda c: c.name, "command")
        self._unique(services, "services", lambda s: (s.host, s.description), "service")
        content = self.render(
            "nagios.cfg.j2",
            {
                "section": self.name,
                "hosts": hosts,
                "commands": commands,
                "services": services,
                "extra": extra,
                "host_use": values.host_use,
                "service_use": values.service_use,
            },
        )
        claims = object_claims(values, hosts, commands, services, nrpe_services, extra)
        objects = self.layout.nagios_objects
        path = posixpath.join(objects, values.name + ".cfg")
        service = Reload("nagios", self.layout.nagios_service)
        spec.force = values.force
        spec.files.append(
            FileSpec(
                path=path,
                content=content,
                mode=0o644,
                checks=[
                    Check(
                        self.layout.nagios_service,
                        NagiosContext(
                            main_config(self.layout),
                            objects,
                            origins=validate.trace(content, claims),
                        ),
                    )
                ],
                reloads=[service],
            )
        )
        spec.removal_reloads.append(service)

    def _parse(self, values: Values, option: str, parse, expected: str) -> list:
        result = []
        for line in values[option]:
            try:
                result.append(parse(line))
            except ValueError as error:
                raise ConfigError(self.name, option, str(error), expected) from None
        return result

    def _unique(self, items: list, option: str, key, kind: str) -> None:
        seen = set()
        for item in items:
            if key(item) in seen:
                shown = " ".join(key(item)) if isinstance(key(item), tuple) else key(item)
                raise ConfigError(
                    self.name, option, f"{kind} {shown} is defined twice", f"each {kind} once"
                )
            seen.add(key(item))


def object_claims(
    values: Values,
    hosts: list[Host],
    commands: list[Command],
    services: list[NagiosService],
    nrpe_services: list[NagiosService],
    extra: str,
) -> list[tuple[str, str]]:
    """The lines of each object definition and the option that wrote them, in the template's
    order: a complaint of ``nagios -v`` about a line names the option."""
    claims: list[tuple[str, str]] = []
    for host in hosts:
        claims += [
            ("hosts", line)
            for line in (
                "define host {",
                f"use {values.host_use}",
                f"host_name {host.name}",
                f"alias {host.alias}",
                f"address {host.address}",
                "}",
            )
        ]
    for command in commands:
        claims += [
            ("commands", line)
            for line in (
                "define command {",
                f"command_name {command.name}",
                f"command_line {command.line}",
                "}",
            )
        ]
    for service in services:
        option = "nrpe-checks" if service in nrpe_services else "services"
        claims += [
            (option, line)
            for line in (
                "define service {",
                f"use {values.service_use}",
                f"host_name {service.host}",
                f"service_description {service.description}",
                f"check_command {service.command}",
                "}",
            )
        ]
    return claims + [("extra", line) for line in extra.split("\n")]
