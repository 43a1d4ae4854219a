"""``system_recipes:service``: one section with the essentials configures a whole service.

The section expands (when the system-recipes extension loads, before any part is built) into
level-1 sections named after it, added to ``parts`` right after it:

- ``NAME-package`` (``system_recipes:package``, when ``package`` is set): exposes ``prefix``,
  ``version`` and ``release``, so ``${NAME:prefix}`` works in this section;
- ``NAME-deployment`` (``system_recipes:deployment``): the account and ``/etc/NAME``,
  ``/var/log/NAME``, ``/var/lib/NAME``, ``/run/NAME``; ``${NAME:etc-directory}`` and the other
  directories work in this section;
- ``NAME-config`` (``system_recipes:template``, when ``config`` is set): the template rendered
  into the etc directory, mode 0640, group of the service; when it changes, or the package's
  version does, the running program is restarted once after the commit (``restart-on-change =
  false`` turns that off);
- ``NAME-supervisor`` (``run = supervisor``, autorestart) or ``NAME-runscript`` (``run =
  systemd`` or ``sysv``): how the command is started;
- ``NAME-logrotate``: ``logs`` (default: every ``*.log`` in the log directory) rotated daily,
  14 copies, compressed, missingok, notifempty, and copytruncate -- unless ``reopen`` names a
  command that makes the program reopen its logs, which then runs as postrotate;
- ``NAME-cron`` (when ``cron`` is set): the entries, run as the service's user;
  ``package``, ``config``, ``logs`` and ``cron`` set to nothing (``cron =`` in a host.cfg
  that extends a role) turn their part off, and its files are removed;
- ``NAME-nrpe`` (when ``check`` is not ``none``): ``http PORT [PATH]`` becomes
  ``check_http -H 127.0.0.1 -p PORT -u PATH`` with warning 2 s and critical 5 s, ``tcp PORT``
  becomes ``check_tcp``; the check is named ``check_NAME_http`` (``check_NAME_tcp``), and the
  expansion exports that name as the fact ``nrpe-checks`` (a system's compiled configuration
  makes a Nagios service of it on the monitoring host).

Every generated section can be refined: a section of the same name in the profile (without a
``recipe`` line) is merged over the generated one, option by option, and wins; it may also add
options (template variables for ``NAME-config``, ``dbpath`` for ``NAME-package``). Generated
files are named after ``name`` (``/etc/logrotate.d/NAME``, ``/etc/cron.d/NAME``...).
``system-recipes explain -c host.cfg NAME`` prints the generated sections as cfg text, each value
with where it came from, and ``system-recipes plan`` names the sections each service section
expands into (``buildout annotate`` shows only the profile's own values: buildout loads no
extension for it). Dropping the section from ``parts`` removes every file it generated.

Example::

    [shop]
    recipe = system_recipes:service
    package = shop
    command = ${shop:prefix}/bin/shop-server --config ${shop:etc-directory}/shop.ini
    user = shop
    run = supervisor
    config = shop.ini.j2
    reopen = pkill -HUP -u shop -f shop-server
    check = http 8080 /health
    cron = 0 3 * * * ${shop:prefix}/bin/shop-cleanup

    [shop-config]
    port = 8080
"""

from __future__ import annotations

import zc.buildout

from system_recipes.core.buildout.api import substituted
from system_recipes.core.declare.datatypes import port
from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.schema import (
    Account,
    Assignments,
    Bool,
    Choice,
    Line,
    Lines,
    Name,
    Option,
    Schema,
    Text,
    Values,
    inline_comment_hint,
    section_name,
)
from system_recipes.core.plan import run
from system_recipes.meta.expand import GENERATED_BY, Expansion
from system_recipes.meta.service_sections import SECTIONS, Service

RUN_KINDS = ("supervisor", "systemd", "sysv")
CHECK_SYNTAX = "http PORT [PATH], tcp PORT, or none"
EXPOSED_FROM_PACKAGE = ("prefix", "version", "release")
EXPOSED_FROM_DEPLOYMENT = (
    "etc-directory",
    "log-directory",
    "lib-directory",
    "run-directory",
    "user",
    "group",
)

SCHEMA = Schema(
    [
        Option(
            "name",
            Name(),
            default=section_name,
            help="the service's name: names its directories and files",
        ),
        Option(
            "package",
            Line(pattern=r"[A-Za-z0-9_.+-]+", expected="a package name"),
            default=None,
            help="the installed package that holds the software (adds NAME-package)",
        ),
        Option(
            "command",
            Line(),
            required=True,
            help="the command that runs the service, in the foreground",
        ),
        Option("user", Account(), default=None, help="the account it runs as (default: NAME)"),
        Option("group", Account(), default=None, help="its group (default: the user)"),
        Option(
            "run",
            Choice(*RUN_KINDS),
            default="supervisor",
            help="how it is started: a supervisor program, a systemd unit or an init script",
        ),
        Option(
            "config",
            Line(),
            default=None,
            help="a jinja2 template rendered into the etc directory (adds NAME-config); its file "
            "name without .j2 names the file",
        ),
        Option(
            "logs",
            Lines(),
            default=None,
            help="log file globs to rotate (default: LOG-DIRECTORY/*.log)",
        ),
        Option(
            "reopen",
            Line(),
            default=None,
            help="a command that makes the service reopen its logs: run after rotation instead "
            "of copytruncate",
        ),
        Option("check", Line(), default="none", help=f"the NRPE health check: {CHECK_SYNTAX}"),
        Option(
            "cron",
            Lines(),
            default=None,
            help="cron entries (schedule and command), run as the user (adds NAME-cron)",
        ),
        Option(
            "environment",
            Assignments(),
            default=None,
            help="environment of the command, lines of KEY=value",
        ),
        Option("directory", Text(), default=None, help="working directory of the command"),
        Option(
            "restart-on-change",
            Bool(),
            default=True,
            help="restart the running program once, after the commit, when its config file or "
            "its package version changed (supervisor: restart of the program; systemd: "
            "try-restart; sysv: restart)",
        ),
    ]
)


#: generated option -> the service option it is made from, per generated section: an error in
#: a generated value names the option the operator wrote
TAKEN_FROM = {
    "package": {"name": "package", "restart": "restart-on-change"},
    "deployment": {"name": "name", "user": "user", "group": "group"},
    "config": {"template": "config", "restart": "restart-on-change"},
    "supervisor": {
        "name": "name",
        "command": "command",
        "user": "user",
        "directory": "directory",
        "environment": "environment",
    },
    "runscript": {
        "name": "name",
        "command": "command",
        "user": "user",
        "group": "group",
        "working-directory": "directory",
        "environment": "environment",
        "kind": "run",
    },
    "logrotate": {"name": "name", "paths": "logs", "postrotate": "reopen", "su": "user"},
    "cron": {"name": "name", "entries": "cron", "user": "user"},
    "nrpe": {"name": "name", "checks": "check"},
}


def parse_check(text: str) -> tuple[str, ...]:
    """``http PORT [PATH]`` / ``tcp PORT`` / ``none`` -> words; raises ValueError."""
    words = tuple(text.split())
    if words in ((), ("none",)):
        return ()
    kind, args = words[0], words[1:]
    port_ok = bool(args) and (args[0].startswith("${") or _is_port(args[0]))
    if kind == "http" and port_ok and len(args) <= 2:
        path = args[1] if len(args) == 2 else "/"
        if not (path.startswith("/") or path.startswith("${")):
            raise ValueError(f"{path!r} is not a URL path")
        return ("http", args[0], path)
    if kind == "tcp" and port_ok and len(args) == 1:
        return ("tcp", args[0])
    raise ValueError(f"{text.strip()!r} is not a check")


def _is_port(text: str) -> bool:
    try:
        port(text)
    except ValueError:
        return False
    return True


def _value(buildout, name: str, raw: dict, option: str) -> str | None:
    """A meta option's value for deciding what to generate: substituted only when needed."""
    value = raw.get(option)
    if value is None or "${" not in value:
        return value
    return substituted(buildout, name, raw, option)


def read_service(name: str, raw: dict[str, str], buildout) -> Service:
    """The options that decide what is generated, checked (raw, unsubstituted values)."""

    def choose(option: str, parse, resolve: bool = True):
        text = _value(buildout, name, raw, option) if resolve else raw.get(option)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as error:
            field_ = SCHEMA.options[option]
            raise ConfigError(
                name,
                option,
                inline_comment_hint(str(error), text),
                field_.type.expected if option != "check" else CHECK_SYNTAX,
            ) from None

    # an option set to nothing (``cron =`` in a host.cfg) turns its part off
    turned_off: set[str] = {
        key
        for key in ("package", "config", "logs", "reopen", "cron")
        if key in raw and not raw[key].strip()
    }
    raw = {key: value for key, value in raw.items() if key not in turned_off}
    if "command" not in raw:
        raise ConfigError(name, "command", "missing required option", "the service's command")
    kind = choose("run", SCHEMA.options["run"].type.parse) or "supervisor"
    restart_on_change = choose("restart-on-change", Bool().parse)
    check = choose("check", parse_check, resolve=False) or ()  # keeps ${...} words
    service = raw.get("name", name).strip()
    exposed_to = {key: f"{name}-deployment" for key in EXPOSED_FROM_DEPLOYMENT}
    if "package" in raw:
        exposed_to.update({key: f"{name}-package" for key in EXPOSED_FROM_PACKAGE})
    # what restarts the program when its config file or package changed (run kinds' names)
    restart = None
    if restart_on_change is not False:
        restart = {
            "supervisor": f"supervisor {service}",
            "systemd": f"systemd {service}.service",
            "sysv": f"sysv {service}",
        }[kind]
    return Service(name, raw, turned_off, kind, check, service, restart, exposed_to)


def generate(name: str, raw: dict[str, str], buildout) -> Expansion:
    """The level-1 sections for the service section ``name`` (raw, unsubstituted values)."""
    service = read_service(name, raw, buildout)
    out = Expansion()
    for make in SECTIONS:
        made = make(service)
        if made is None:
            continue
        section = f"{name}-{made.suffix}"
        out.sections[section] = {k: v for k, v in made.options.items() if v is not None}
        for option, meta_option in made.origins.items():
            out.origins[(section, option)] = meta_option
        for option, meta_option in TAKEN_FROM.get(made.suffix, {}).items():
            if meta_option in service.raw or meta_option == "name":
                out.blame[(section, option)] = meta_option
        if made.suffix == "nrpe":
            # exported: the system compiler makes a Nagios service of each on the monitoring
            # host (fleet/compile/roles.py), so it never guesses the names from a convention
            checks = made.options["checks"] or ""
            out.facts["nrpe-checks"] = [
                line.split(None, 1)[0] for line in checks.splitlines() if line.strip()
            ]
    out.exposed = {key: f"${{{section}:{key}}}" for key, section in service.exposed_to.items()}
    return out


class Recipe:
    """The service section itself writes nothing: its generated sections do. Constructing it
    checks its options with their resolved values."""

    schema = SCHEMA
    recipe_name = "service"
    #: a meta-recipe: the extension expands the section into level-1 sections with this
    generate = staticmethod(generate)

    def __init__(self, buildout, name: str, options):
        if run.current(buildout) is None:
            raise zc.buildout.UserError(
                f"[{name}] recipe system_recipes:service needs the system-recipes extension: "
                "add 'extensions = system-recipes' to [buildout] (profiles/base.cfg does)"
            )
        exposed = set(EXPOSED_FROM_PACKAGE) | set(EXPOSED_FROM_DEPLOYMENT)
        values: Values = SCHEMA.parse(name, options, ignore=exposed)
        try:
            parse_check(values.check)
        except ValueError as error:
            raise ConfigError(name, "check", str(error), CHECK_SYNTAX) from None
        self.values = values
        self.buildout, self.name = buildout, name
        for key in exposed:
            options.get(key)  # read for the sections it generated, not unused (buildout warns)

    def install(self):
        """Stage what the section generated: ``buildout install NAME`` names only this part,
        and buildout installs exactly the parts it is given (a full run stages them anyway)."""
        active = run.current(self.buildout)
        generated = list(getattr(self.buildout, GENERATED_BY, {}).get(self.name, ()))
        for section in generated:
            self.buildout[section]  # constructs its recipe, which declares its files
        assert active is not None  # __init__ refuses to run without the extension
        for section in generated:
            if section in active.declared:
                active.stage(section)
        return ()

    update = install
