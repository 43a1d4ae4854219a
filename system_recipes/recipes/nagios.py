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

import os
import posixpath
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass

from ..core import reload, validate
from ..core.errors import ConfigError, shown
from ..core.model import Check, FileSpec, PartSpec, Reload
from ..core.recipe import Recipe
from ..core.schema import (
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
from ..core.settings import Settings
from ..daemons.common import directive, reload_service

OBJECT_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,199}"
OBJECT = re.compile(OBJECT_NAME)
ADDRESS = re.compile(r"[A-Za-z0-9_.:%-]{1,253}")
# nagios.cfg illegal_object_name_chars, plus ';' (starts a comment) and '\\'
DESCRIPTION = re.compile(r"[^`~!$%^&*|'\"<>?,()=;\\\s]([^`~!$%^&*|'\"<>?,()=;\\]*"
                         r"[^`~!$%^&*|'\"<>?,()=;\\\s])?")
FREE_TEXT = re.compile(r"[^;\\\x00-\x1f]+")
HOSTS = "HOST ADDRESS [ALIAS...]"
COMMANDS = "COMMAND COMMAND-LINE..."
SERVICES = "HOST DESCRIPTION CHECK-COMMAND... (quote a description with spaces)"
NRPE = "HOST NRPE-CHECK [DESCRIPTION...]"
NAME_RULE = "letters, digits, '_', '.', '@', ':', '-'"



SCHEMA = Schema([
    Option("name", Name(), default=section_name,
           help="the file name in the Nagios object directory, without .cfg"),
    Option("hosts", Lines(), default=[], help=f"one host per line: {HOSTS}"),
    Option("commands", Lines(), default=[], help=f"one command per line: {COMMANDS}"),
    Option("services", Lines(), default=[], help=f"one service per line: {SERVICES}"),
    Option("nrpe-checks", Lines(), default=[],
           help=f"one service per line run by the agent's NRPE: {NRPE}"),
    Option("nrpe-command", Line(pattern=OBJECT_NAME, expected="a Nagios command name"),
           default="check_nrpe",
           help="the Nagios command that runs an NRPE check (Debian's nagios-nrpe-plugin "
                "defines check_nrpe)"),
    Option("host-use", Line(pattern=OBJECT_NAME, expected="a host template name"),
           default="linux-server", help="the host template of every host"),
    Option("service-use", Line(pattern=OBJECT_NAME, expected="a service template name"),
           default="generic-service", help="the service template of every service"),
    Option("extra", Text(), default="",
           help="raw Nagios object definitions appended to the file"),
    force_option(),
])


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
class Service:
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
        raise ValueError(f"service description {shown(value)} holds a character Nagios refuses "
                         "(`~!$%^&*|'\"<>?,()=;\\ or a line break)")
    return value


def _free_text(kind: str, value: str) -> str:
    if not FREE_TEXT.fullmatch(value):
        raise ValueError(f"{kind} {shown(value)} holds ';' (a Nagios comment), '\\' or a control "
                         "character")
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
    lexer = shlex.shlex(line, posix=True)
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
    return words, lexer.instream.read().strip()


def parse_service(line: str) -> Service:
    words, rest = _head(line, 2)
    if len(words) < 2 or not rest:
        raise ValueError(f"{shown(line)} has no check command")
    return Service(_name("host", words[0]), _description(words[1]), check_command(rest))


def parse_nrpe(line: str, nrpe_command: str) -> Service:
    words = _words(line)
    if len(words) < 2:
        raise ValueError(f"{shown(line)} has no NRPE check")
    host, check = _name("host", words[0]), words[1]
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", check):
        raise ValueError(f"NRPE check {shown(check)} is not a plain name")
    description = " ".join(words[2:]) or check
    return Service(host, _description(description), f"{nrpe_command}!{check}")


def main_config(layout) -> str:
    """nagios.cfg beside the object directory: /etc/nagios4/nagios.cfg on Debian."""
    return posixpath.join(posixpath.dirname(layout.nagios_objects), "nagios.cfg")


class Recipe(Recipe):
    """Nagios hosts, commands and services in the object directory."""

    schema = SCHEMA
    recipe_name = "nagios"

    def build(self, spec: PartSpec, values: Values) -> None:
        hosts = self._parse(values, "hosts", parse_host, HOSTS)
        commands = self._parse(values, "commands", parse_command, COMMANDS)
        services = self._parse(values, "services", parse_service, SERVICES)
        nrpe_services = self._parse(values, "nrpe-checks",
                                    lambda line: parse_nrpe(line, values.nrpe_command), NRPE)
        services += nrpe_services
        extra = values.extra.strip("\n")
        if "\0" in extra:
            raise ConfigError(self.name, "extra", "contains a NUL byte", "object definitions")
        if not (hosts or commands or services or extra):
            raise ConfigError(self.name, None, "defines no objects",
                              "hosts, commands, services, nrpe-checks or extra")
        for option, used in (("host-use", hosts), ("service-use", services),
                             ("nrpe-command", nrpe_services)):
            if option in self.options and not used:
                raise ConfigError(self.name, option, "has no effect: "
                                  + {"host-use": "no hosts", "service-use": "no services",
                                     "nrpe-command": "no nrpe-checks"}[option],
                                  f"{option} only with what it applies to")
        self._unique(hosts, "hosts", lambda h: h.name, "host")
        self._unique(commands, "commands", lambda c: c.name, "command")
        self._unique(services, "services", lambda s: (s.host, s.description), "service")
        content = self.render("nagios.cfg.j2", {
            "section": self.name, "hosts": hosts, "commands": commands, "services": services,
            "extra": extra, "host_use": values.host_use, "service_use": values.service_use})
        claims = object_claims(values, hosts, commands, services, nrpe_services, extra)
        objects = self.layout.nagios_objects
        path = posixpath.join(objects, values.name + ".cfg")
        leaving = self.earlier_files(path)
        service = Reload("nagios", self.layout.nagios_service)
        spec.force = values.force
        spec.files.append(FileSpec(
            path=path, content=content, mode=0o644,
            checks=[Check(self.layout.nagios_service,
                          (self.settings.root, main_config(self.layout), objects, leaving,
                           validate.trace(content, claims)))],
            reloads=[service]))
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
                raise ConfigError(self.name, option, f"{kind} {shown} is defined twice",
                                  f"each {kind} once")
            seen.add(key(item))


def object_claims(values: Values, hosts: list[Host], commands: list[Command],
                  services: list[Service], nrpe_services: list[Service],
                  extra: str) -> list[tuple[str, str]]:
    """The lines of each object definition and the option that wrote them, in the template's
    order: a complaint of ``nagios -v`` about a line names the option."""
    claims: list[tuple[str, str]] = []
    for host in hosts:
        claims += [("hosts", line) for line in (
            "define host {", f"use {values.host_use}", f"host_name {host.name}",
            f"alias {host.alias}", f"address {host.address}", "}")]
    for command in commands:
        claims += [("commands", line) for line in (
            "define command {", f"command_name {command.name}",
            f"command_line {command.line}", "}")]
    for service in services:
        option = "nrpe-checks" if service in nrpe_services else "services"
        claims += [(option, line) for line in (
            "define service {", f"use {values.service_use}", f"host_name {service.host}",
            f"service_description {service.description}",
            f"check_command {service.command}", "}")]
    return claims + [("extra", line) for line in extra.split("\n")]


# -- the validator: nagios -v on a copy of the main configuration -----------------------------
@validate.register
class NagiosValidator(validate.Validator):
    """``nagios4 -v`` on a temporary main config that reads the object directory to be."""

    name = "nagios4"
    tools = ("nagios4",)
    timeout = 120

    def check(self, items: list[validate.Item], context: validate.ValidationContext) -> dict[int, str | validate.Problem]:
        groups: dict[tuple, list[int]] = {}
        for index, item in enumerate(items):
            root, main, objects = item.check.arguments[:3]
            groups.setdefault((root, main, objects), []).append(index)
        errors: dict[int, str] = {}
        for (root, main, objects), indexes in groups.items():
            leaving = {p for i in indexes for p in items[i].check.arguments[3]}
            errors.update(self._check_group(root, main, objects, leaving,
                                            [(i, items[i]) for i in indexes]))
        return errors

    def _check_group(self, root: str, main: str, objects: str, leaving: set[str],
                     batch: list[tuple[int, validate.Item]]) -> dict[int, str]:
        below = os.path.join(root, main.lstrip("/"))
        from_root = os.path.isfile(below)
        real_main = below if from_root else main
        try:
            with open(real_main, encoding="utf-8", errors="replace") as stream:
                main_lines = stream.read().splitlines()
        except OSError as error:
            return {i: f"cannot read the Nagios main configuration {main}: {error.strerror}"
                    for i, _ in batch}

        def real(path: str) -> str:
            return os.path.join(root, path.lstrip("/")) if from_root and root != "/" else path

        def resolve(value: str) -> str:
            return posixpath.normpath(posixpath.join(posixpath.dirname(main), value))

        if not any(_key(line) == "cfg_dir" and resolve(_value(line)) == objects
                   for line in main_lines):
            return {i: f"{main} does not read {objects} (expected cfg_dir={objects})"
                    for i, _ in batch}
        with tempfile.TemporaryDirectory(prefix="system-recipes-nagios-") as tmp:
            os.chmod(tmp, 0o755)  # nagios -v reads the objects as nagios_user
            copy = os.path.join(tmp, "objects")
            source = os.path.join(root, objects.lstrip("/"))
            skip = {item.file.path for _, item in batch} | leaving

            def ignore(directory: str, names: list[str]) -> list[str]:
                host_dir = objects + directory[len(source):]
                return [n for n in names if posixpath.join(host_dir, n) in skip]

            if os.path.isdir(source):
                shutil.copytree(source, copy, symlinks=True, ignore=ignore)
            else:
                os.makedirs(copy)
            files: dict[str, tuple[int, str]] = {}  # temp path -> (index, host path)
            for index, item in batch:
                relative = posixpath.relpath(item.file.path, objects)
                target = os.path.join(copy, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as stream:
                    stream.write(item.file.content)
                files[target] = (index, item.file.path)
            config = os.path.join(tmp, "nagios.cfg")
            lines = []
            for line in main_lines:
                key = _key(line)
                if key in ("cfg_dir", "cfg_file", "resource_file"):
                    path = resolve(_value(line))
                    line = f"{key}={copy if key == 'cfg_dir' and path == objects else real(path)}"
                lines.append(line)
            with open(config, "w", encoding="utf-8") as stream:
                stream.write("\n".join(lines) + "\n")

            def verify(active: set[str]) -> list[str]:
                for path in files:  # nagios reads only *.cfg from a cfg_dir
                    parked = path + ".off"
                    if path in active and os.path.exists(parked):
                        os.rename(parked, path)
                    elif path not in active and os.path.exists(path):
                        os.rename(path, parked)
                return self._verify(config, tmp, files, objects, copy)

            problems = verify(set(files))
            if not problems:
                return {}
            errors: dict[int, list[str]] = {}
            unattributed = []
            for line in problems:
                owners = [files[path] for path in files if _mentions(line, path, copy, objects)]
                if owners:
                    for index, _ in owners:
                        errors.setdefault(index, []).append(line)
                else:
                    unattributed.append(line)
            if unattributed:
                order = list(files)
                if len(order) == 1:
                    errors.setdefault(files[order[0]][0], []).extend(unattributed)
                else:  # the first file whose addition breaks the configuration
                    for count in range(1, len(order) + 1):
                        found = verify(set(order[:count]))
                        if found:
                            errors.setdefault(files[order[count - 1]][0], []).extend(
                                line for line in found if line not in errors.get(
                                    files[order[count - 1]][0], []))
                            break
                    else:
                        for index, _ in files.values():
                            errors.setdefault(index, []).extend(unattributed)
        tool = self.tools[0]
        by_index = dict(batch)
        return {index: _located(f"{tool} -v: ", lines, by_index[index])
                for index, lines in errors.items()}

    def _verify(self, config: str, tmp: str, files: dict, objects: str, copy: str) -> list[str]:
        """Error lines of ``nagios -v``, with temporary paths shown as host paths."""
        try:
            result = validate.run_tool([self.tools[0], "-v", config], timeout=self.timeout)
        except OSError as error:
            return [f"cannot run {self.tools[0]}: {error.strerror}"]
        except Exception as error:  # subprocess.TimeoutExpired
            return [f"{self.tools[0]} -v did not finish: {error}"]
        output = result.stdout + result.stderr
        errors = [line.strip() for line in output.splitlines()
                  if line.strip().startswith(("Error:", "Unable to"))]
        okay = (result.returncode == 0 and re.search(r"^Total Errors:\s+0\s*$", output, re.M)
                and not errors)
        if okay:
            return []
        if not errors:
            errors = [line.strip() for line in output.splitlines() if "***>" in line] or \
                [f"exited {result.returncode}"]
        return [line.replace(copy, objects).replace(config, "nagios.cfg").replace(tmp, "")
                for line in errors]


@validate.register
class NagiosRedHatValidator(NagiosValidator):
    name = "nagios"
    tools = ("nagios",)


def _key(line: str) -> str:
    return line.strip().partition("=")[0].strip() if "=" in line else ""


def _value(line: str) -> str:
    return line.strip().partition("=")[2].strip()


def _mentions(line: str, temp_path: str, copy: str, objects: str) -> bool:
    host_path = objects + temp_path[len(copy):]
    return re.search(re.escape(host_path) + r"(?![\w.-])", line) is not None


def _located(prefix: str, lines: list[str], item: validate.Item) -> str | validate.Problem:
    """nagios -v's lines about a file, located at the first line of it they name (nagios says
    ``in file 'PATH' on line N``, ``(config file 'PATH', starting on line N)`` or
    ``(PATH:N)``); that location is then said once, by the error itself."""
    where = re.compile(r"\s*(?:\(config file '|in file '|\()" + re.escape(item.file.path)
                       + r"(?:', starting on line |' on line |:)(\d+)\)?")
    number = None
    specific, located = [], []  # "Invalid directive 'x'" says more than "Could not add ..."
    for line in lines:
        match = where.search(line)
        if match:
            number = number or int(match.group(1))
            located.append((line[:match.start()] + line[match.end():]).rstrip(" ."))
        else:
            specific.append(line)
    message = prefix + _summary(specific + located, limit=1)
    origins = item.check.arguments[4] if len(item.check.arguments) > 4 else ()
    if number is None:
        # "... specified in service 'SSH' for host 'shop1' not defined": that definition
        named = re.search(r"service '([^']*)' for host '([^']*)'", lines[0])
        number = named and _service_line(item.file.content, *named.groups())
    if number is None:
        return message
    return validate.locate(message, item.file.content, number, origins)


def _service_line(content: bytes, description: str, host: str) -> int | None:
    """The line starting the definition of the service ``description`` on ``host``."""
    start, fields = None, {}
    for number, line in enumerate(content.decode("utf-8", "replace").split("\n"), start=1):
        words = line.split(None, 1)
        if line.split() == ["define", "service", "{"]:
            start, fields = number, {}
        elif words and words[0] == "}" and start is not None:
            if fields.get("service_description") == description and \
                    fields.get("host_name") == host:
                return start
            start = None
        elif start is not None and len(words) == 2:
            fields[words[0]] = words[1].strip()
    return None


def _summary(lines: list[str], limit: int = 3) -> str:
    unique = list(dict.fromkeys(line.removeprefix("Error: ") for line in lines))
    text = "; ".join(unique[:limit])
    if len(unique) > limit:
        text += f" (and {len(unique) - limit} more)"
    return text


# -- the reload -----------------------------------------------------------------------------
@reload.register("nagios")
def reload_nagios(targets: list[str], settings: Settings) -> reload.Outcome:
    config = settings.target(main_config(settings.layout))
    pidfile = directive(config, "lock_file") or f"/run/{settings.layout.nagios_service}/" \
        f"{settings.layout.nagios_service}.pid"
    outcome = reload.Outcome()
    for service in targets:
        outcome.add(reload_service("nagios", service, pidfile, ("nagios4", "nagios")))
    return outcome
