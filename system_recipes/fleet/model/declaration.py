"""The declaration of the system model: every table a model file may hold (``[system]``,
``[hosts.NAME]``, ``[services.NAME]`` and its placement, settings and secrets,
``[monitoring]``), each key typed, defaulted and documented, gathered in :data:`MODEL`.

Separate from :mod:`.spec`, which reads a file against this declaration and checks what one
table says about another: the declaration is data (the reference docs/systems-reference.md is
generated from it), the checks are code.
"""

from __future__ import annotations

from system_recipes.core.declare.schema import AbsolutePath, Choice, Line, Option, Values
from system_recipes.fleet.model.tables import Table
from system_recipes.fleet.model.values import (
    NAME,
    NAME_EXPECTED,
    TAG,
    Address,
    CheckOption,
    Flag,
    Int,
    List,
    Memory,
    Port,
    PortRange,
    SecretReference,
    Setting,
    Str,
)

KINDS = ("haproxy", "postgresql")


def default_port_range(values: Values) -> tuple[int, int]:
    """20000-20999"""
    return (20000, 20999)


def the_roles_check(values: Values) -> None:
    """the role's own"""
    return None


Name = Str(Line(NAME, NAME_EXPECTED))
Names = List(Name)
Tags = List(Str(Line(TAG, "a tag of lowercase letters, digits, '-' and '_'")))
SECTION_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
PortOption = Str(
    Line(f"{SECTION_NAME}:{SECTION_NAME}", "SECTION:OPTION of the role, such as shop-config:port")
)
SectionName = Str(Line(SECTION_NAME, "a section name of the role, such as shop-config"))
Role = Str(
    Line(
        r"(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9_./-]+\.cfg",
        "a profile relative to the profiles directory, such as roles/app-server.cfg",
    )
)

SYSTEM = Table(
    "system",
    "What the whole model is about.",
    [
        Option(
            "name",
            Name,
            required=True,
            help="the system's name: the compiled files and the lock say which system they are",
        ),
        Option(
            "profiles",
            Str(AbsolutePath()),
            required=True,
            help="where the profiles (base.cfg, roles/) are installed on every host, such as "
            "/opt/shop/profiles: roles are read from there",
        ),
        Option(
            "port-range",
            PortRange(),
            default=default_port_range,
            help='where automatic ports (port = "auto") are taken from; a fixed port inside it '
            "is refused",
        ),
    ],
)

HOST = Table(
    "hosts.NAME",
    "A machine. Instances are placed only on hosts of the model.",
    [
        Option(
            "address",
            Address(),
            required=True,
            help="where the other hosts reach it (backends, database access, monitoring); unique",
        ),
        Option("tags", Tags, default=(), help="what a service's placement may ask for"),
        Option(
            "memory",
            Memory(),
            required=True,
            help="capacity: the sum of the memory of the instances placed here never exceeds it",
        ),
    ],
)

PLACEMENT = Table(
    "services.NAME.placement",
    'Where the instances of a service may run; `placement = { tags = ["app"], spread = true }`.',
    [
        Option("tags", Tags, default=(), help="a host must have every one of these tags"),
        Option("hosts", Names, default=(), help="only these hosts (empty: any host)"),
        Option(
            "spread",
            Flag(),
            default=False,
            help="no two instances on one host (always so for a service with a port: ports "
            "are unique per host)",
        ),
    ],
    implicit=True,
)

SETTINGS = Table(
    "services.NAME.settings",
    "Refinements of the role's sections, option by option, as a "
    'host.cfg would write them: `[services.shop.settings.shop-config]` `host = "0.0.0.0"`. '
    "An option named like a secret (password, token, secret, private key...) is refused: "
    "name it in `secrets` instead.",
    free=Table(
        "services.NAME.settings.SECTION",
        "",
        free=Setting(),
        free_name=Line(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "an option name"),
    ),
    free_name=Line(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "a section name"),
    implicit=True,
)

SECRETS = Table(
    "services.NAME.secrets",
    'Secrets by reference only: `db-password = "file:/etc/shop/'
    'db-password"`. The model, the lock and the compiled files carry the reference; the '
    "value is read on the host when the configuration is applied.",
    free=SecretReference(),
    free_name=Line(NAME, NAME_EXPECTED),
    implicit=True,
)

SERVICE = Table(
    "services.NAME",
    "A service: a role of the profiles or a built-in kind, run "
    "as `instances` copies named NAME.1, NAME.2, ...",
    [
        Option(
            "role",
            Role,
            help="the level-3 role that runs it, such as roles/app-server.cfg "
            "(a service has a role or a kind)",
        ),
        Option("kind", Str(Choice(*KINDS)), help="a built-in service instead of a role"),
        Option(
            "package",
            Str(Line(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}", "a package name")),
            help="the package to ensure on its hosts",
        ),
        Option(
            "version",
            Str(Line(r"[A-Za-z0-9][A-Za-z0-9_.+~:-]{0,63}", "a package version")),
            help="the version of the package to ensure (none: any)",
        ),
        Option("instances", Int(1, 1000), default=1, help="how many copies run"),
        Option(
            "port",
            Port(auto=True),
            help='the port it listens on, the same on every instance; "auto" takes one from '
            "[system] port-range and keeps it",
        ),
        Option(
            "port-option",
            PortOption,
            help="for a role with a port: the option of the role that is given the allocated "
            "port in each compiled host.cfg (`shop-config:port`); required then",
        ),
        Option(
            "link-section",
            SectionName,
            help="for a role with links: the section of the role that is given, for each "
            "linked service LINK, `LINK-host` (the addresses of its instances) and "
            "`LINK-port` (its port) (default: the section of port-option)",
        ),
        Option(
            "check",
            CheckOption(),
            default=the_roles_check,
            help="its health check, an NRPE command on each of its hosts and a Nagios service "
            "on the monitoring host",
        ),
        Option("placement", PLACEMENT, help="where it may run"),
        Option(
            "memory",
            Memory(),
            default=0,
            help="memory each instance reserves on its host (0: none)",
        ),
        Option(
            "links",
            Names,
            default=(),
            help="services it uses: it is given their addresses and ports, and they let its "
            "hosts in",
        ),
        Option(
            "backends",
            Name,
            help="for a load balancer (kind haproxy): the service whose "
            "instances it spreads requests over",
        ),
        Option(
            "max-unavailable",
            Int(1),
            default=1,
            help="how many of its instances may be down at once while the system is applied",
        ),
        Option("settings", SETTINGS, help="refinements of the role's sections"),
        Option("secrets", SECRETS, help="secrets it needs, by reference"),
    ],
)

MONITORING = Table(
    "monitoring",
    "Who watches: every service's check becomes an NRPE command "
    "on its hosts and a Nagios service here.",
    [
        Option("host", Name, required=True, help="the host that runs Nagios"),
    ],
)

MODEL = Table(
    "",
    "A system model is one TOML file; its allocation lock (`NAME.lock.toml`) is written beside it.",
    [
        Option("system", SYSTEM, required=True, help="the system"),
        Option(
            "hosts",
            Table("hosts", free=HOST, free_name=Line(NAME, NAME_EXPECTED)),
            required=True,
            help="the machines",
        ),
        Option(
            "services",
            Table("services", free=SERVICE, free_name=Line(NAME, NAME_EXPECTED), implicit=True),
            help="what runs on them",
        ),
        Option("monitoring", MONITORING, help="the Nagios host (none: nothing is monitored)"),
    ],
)
