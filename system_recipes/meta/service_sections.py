"""The level-1 sections a ``system_recipes:service`` section generates, one function each, from
the checked :class:`Service` they are made from."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field


@dataclass
class Service:
    """What every generated section is made from: a service section's checked essentials."""

    name: str  # the section
    raw: dict[str, str]  # its options as written, without those set to nothing
    turned_off: set[str]  # options set to nothing (``cron =``): their part is off
    kind: str  # how it is started: a RUN_KINDS
    check: tuple[str, ...]  # parse_check's words: () for none
    service: str  # the service's name (``name``, by default the section's)
    restart: str | None  # what restarts it when its config or package changed (a Reload)
    exposed_to: dict[str, str]  # option of this section -> the generated section that has it

    @property
    def deployment(self) -> str:
        return f"{self.name}-deployment"

    @property
    def user(self) -> str:
        return f"${{{self.deployment}:user}}"

    @property
    def group(self) -> str:
        return f"${{{self.deployment}:group}}"

    def rewrite(self, value: str, depth: int = 0) -> str:
        """References to this section's own values point at where they come from, so the
        generated sections stand on their own (``explain`` output can replace the section)."""

        def replace(match: re.Match) -> str:
            option = match.group(1)
            if option in self.exposed_to and option not in self.raw:
                return f"${{{self.exposed_to[option]}:{option}}}"
            if option in self.raw and depth < 5:
                return self.rewrite(self.raw[option], depth + 1)
            return match.group(0)

        return re.sub(r"\$\{" + re.escape(self.name) + r":([^}]+)\}", replace, value)

    def take(self, option: str, default: str | None = None) -> str | None:
        value = self.raw.get(option, default)
        return None if value is None else self.rewrite(value)


#: logrotate defaults; copytruncate gives way to postrotate when ``reopen`` is set
LOGROTATE_DEFAULTS = {
    "frequency": "daily",
    "rotate": "14",
    "compress": "true",
    "missingok": "true",
    "notifempty": "true",
}


HTTP_THRESHOLDS = ("2", "5")


TCP_THRESHOLDS = ("1", "3")


@dataclass
class Section:
    """One generated section: ``NAME-SUFFIX`` with these options (None: left out)."""

    suffix: str
    options: dict[str, str | None]
    #: generated option -> the service option it was taken from (for the source annotation)
    origins: dict[str, str] = field(default_factory=dict)


# -- one function per generated section (None: not generated) ----------------------------------
def package_section(s: Service) -> Section | None:
    if "package" not in s.raw:
        return None
    return Section(
        "package",
        {"recipe": "system_recipes:package", "name": s.take("package"), "restart": s.restart},
    )


def deployment_section(s: Service) -> Section:
    return Section(
        "deployment",
        {
            "recipe": "system_recipes:deployment",
            "name": s.service,
            "user": s.take("user", s.service),
            "group": s.take("group"),
        },
    )


def config_section(s: Service) -> Section | None:
    if "config" not in s.raw:
        return None
    template = s.take("config")
    assert template is not None  # the section is made only when config is set
    filename = posixpath.basename(template.strip())
    filename = filename[:-3] if filename.endswith(".j2") else filename
    return Section(
        "config",
        {
            "recipe": "system_recipes:template",
            "path": f"${{{s.deployment}:etc-directory}}/{filename}",
            "template": template,
            "group": s.group,
            "mode": "0640",
            "restart": s.restart,
        },
        {"template": "config"},
    )


def start_section(s: Service) -> Section:
    """How the command is started: a supervisor program, or a systemd unit / init script."""
    if s.kind == "supervisor":
        return Section(
            "supervisor",
            {
                "recipe": "system_recipes:supervisor",
                "name": s.service,
                "command": s.take("command"),
                "user": s.user,
                "directory": s.take("directory"),
                "environment": s.take("environment"),
                "autostart": "true",
                "autorestart": "true",
                "redirect_stderr": "true",
            },
        )
    return Section(
        "runscript",
        {
            "recipe": "system_recipes:runscript",
            "kind": s.kind,
            "name": s.service,
            "command": s.take("command"),
            "user": s.user,
            "group": s.group,
            "working-directory": s.take("directory"),
            "environment": s.take("environment"),
            "description": f"{s.service} (system_recipes:service [{s.name}])",
        },
    )


def logrotate_section(s: Service) -> Section | None:
    if "logs" in s.turned_off:
        return None
    options = {
        "recipe": "system_recipes:logrotate",
        "name": s.service,
        "paths": s.take("logs", f"${{{s.deployment}:log-directory}}/*.log"),
        **LOGROTATE_DEFAULTS,
        "su": f"{s.user} {s.group}",
    }
    if "reopen" in s.raw:
        options.update(sharedscripts="true", postrotate=s.take("reopen"))
    else:
        options["copytruncate"] = "true"
    return Section("logrotate", options)


def cron_section(s: Service) -> Section | None:
    if "cron" not in s.raw:
        return None
    return Section(
        "cron",
        {
            "recipe": "system_recipes:cron",
            "name": s.service,
            "entries": s.take("cron"),
            "user": s.user,
        },
    )


def nrpe_section(s: Service) -> Section | None:
    check = s.check
    if not check:
        return None
    if check[0] == "http":
        line = (
            f"check_{s.service}_http check_http -H 127.0.0.1 -p {check[1]} -u {check[2]} "
            f"warning={HTTP_THRESHOLDS[0]} critical={HTTP_THRESHOLDS[1]}"
        )
    else:
        line = (
            f"check_{s.service}_tcp check_tcp -H 127.0.0.1 -p {check[1]} "
            f"warning={TCP_THRESHOLDS[0]} critical={TCP_THRESHOLDS[1]}"
        )
    return Section(
        "nrpe", {"recipe": "system_recipes:nrpe", "name": s.service, "checks": s.rewrite(line)}
    )


#: the generated sections, in the order they are added to ``parts``
SECTIONS = (
    package_section,
    deployment_section,
    config_section,
    start_section,
    logrotate_section,
    cron_section,
    nrpe_section,
)
