"""Compilation (level 4): one host.cfg per host of a system model and its allocation.

Each compiled file extends ``base.cfg`` and the roles of the instances placed on the host (at
``[system] profiles``, where they are on the hosts), lists the union of the roles' ``parts``
explicitly (buildout reads ``parts`` from the last file extended only), and refines the roles'
sections with what the model and the allocation say:

- the allocated **port** goes into the option ``[services.NAME] port-option`` names
  (``shop-config:port``);
- the model's **check** (its port filled in) into the role's ``system_recipes:service``
  section;
- each **link** gives ``LINK-host`` (the addresses of its instances) and ``LINK-port`` to the
  section ``link-section`` names (default: the section of ``port-option``);
- the model's **settings**, option by option.

Built-in kinds and the wiring between hosts are sections the compiler writes itself
(:mod:`.wiring`): a ``system_recipes:haproxy`` section whose backends are the instances of the
service it balances, a ``system_recipes:postgresql-access`` section whose clients are exactly
the hosts whose services link to it, an NRPE command per check of a built-in kind, an
``system_recipes:nrpe-server`` section allowing exactly the monitoring host on every host with
checks, and on the monitoring host a ``system_recipes:nagios`` section with a host per host of
the model and a service per check. The check names come from the roles as their expansion
exports them (:mod:`.roles`). Packages to ensure and secrets (by reference) are recorded in
``[fleet]``, a section buildout never builds: the fleet apply reads it.

Every value knows where it came from (:mod:`.config`); nothing here writes a file but
:func:`write`.
"""

from __future__ import annotations

import os
import posixpath

from system_recipes.fleet.compile.config import HostConfig, HostSection, Value
from system_recipes.fleet.compile.roles import (
    Draft,
    RoleInfo,
    load_draft,
    need_option,
    role_info,
)
from system_recipes.fleet.compile.wiring import Wiring
from system_recipes.fleet.compile.written import Writes, check_writes
from system_recipes.fleet.model.allocate import Allocation
from system_recipes.fleet.model.spec import Model, check_words, lock_path
from system_recipes.fleet.model.tables import ModelError


def compile_system(model: Model, allocation: Allocation, profiles: str) -> dict[str, str]:
    """host -> the text of its host.cfg. ``profiles`` is this machine's copy of the profiles
    that are at ``[system] profiles`` on the hosts (the roles are read from there)."""
    return {
        host: config.text() for host, config in compile_hosts(model, allocation, profiles).items()
    }


def compile_hosts(model: Model, allocation: Allocation, profiles: str) -> dict[str, HostConfig]:
    return Compiler(model, allocation, profiles).run()


def header(model: Model, allocation: Allocation, host: str) -> list[str]:
    """Which model and lock produced the file, by name. No digest of the whole model or lock:
    a change to one service must leave the files of hosts it does not concern byte for byte
    as they were (the apply step records the model's revision and digest per host)."""
    name = os.path.basename(model.path)
    return [
        f"{host}: compiled by system-recipes from the system model {model.name} -- do not edit;",
        f"change the model and run `system-recipes fleet compile -m {name}`.",
        f"`system-recipes fleet explain -m {name} {host}` says where each value comes from.",
        f"model: {name}, lock: {os.path.basename(lock_path(model.path))}",
    ]


class Compiler:
    def __init__(self, model: Model, allocation: Allocation, profiles: str) -> None:
        self.model, self.allocation, self.profiles = model, allocation, profiles
        self.wiring = Wiring(model, allocation)
        self.roles: dict[str, RoleInfo] = {}

    def run(self) -> dict[str, HostConfig]:
        configs = {host: self.host_config(host) for host in self.model.hosts}
        self.wiring.monitor(configs)
        for host, config in configs.items():
            self.refine_kinds(host, config)
        return configs

    def services_on(self, host: str) -> list[str]:
        return sorted({i.service for i in self.allocation.instances(host=host)})

    def host_config(self, host: str) -> HostConfig:
        config = HostConfig(host, header(self.model, self.allocation, host))
        profiles = self.model.system.profiles
        config.extends.append(
            self.value(
                posixpath.join(profiles, "base.cfg"),
                "[system] profiles: every host extends base.cfg",
            )
        )
        fleet = config.section(
            "fleet",
            "What the fleet apply ensures before it runs this "
            "configuration; buildout builds no part of it",
        )
        fleet.set("system", self.model.name, "[system] name")
        fleet.set("host", host, f"[hosts.{host}]")
        names = [i.name for i in self.allocation.instances(host=host)]
        fleet.set("instances", "\n".join(names) or "none", "the allocation (lock)")
        roles = [name for name in self.services_on(host) if self.model.services[name].role]
        for name in roles:
            self.add_role(config, name)
        draft = self.draft(config, roles) if roles else None
        for name in self.services_on(host):
            self.wiring.kind_sections(config, name, draft)
            self.record_package(fleet, name)
        if draft is not None:
            self.wiring.role_checks(config, roles, draft, self.role_parts)
        return config

    def value(self, text: str, origin: str) -> Value:
        return Value(text, origin)

    def role(self, name: str) -> RoleInfo:
        """The role of the service ``name``, read once per compilation."""
        role = self.model.services[name].role
        if role not in self.roles:
            self.roles[role] = role_info(self.profiles, role)
        return self.roles[role]

    def role_parts(self, name: str) -> list[str]:
        return self.role(name).parts

    # -- a service with a role: extend it, refine its sections ---------------------------------
    def add_role(self, config: HostConfig, name: str) -> None:
        service = self.model.services[name]
        info = self.role(name)
        path = posixpath.join(self.model.system.profiles, service.role)
        if path not in [value.text for value in config.extends]:
            config.extends.append(self.value(path, f"[services.{name}] role"))
        known = {value.text for value in config.parts}
        config.parts += [
            self.value(part, f"{service.role} parts ([services.{name}] role)")
            for part in info.parts
            if part not in known
        ]
        where = f"services.{name}"
        port = self.allocation.ports.get(name)
        comment = f"[services.{name}]: {service.role} on this host"
        words = check_words(service, port)
        if words is not None:
            if len(info.metas) != 1:
                raise ModelError(
                    where,
                    "check",
                    f"{service.role} has {len(info.metas)} "
                    "system_recipes:service sections to take it",
                    "a role with one service section, or no check in the model "
                    "(the role's own checks stay)",
                )
            config.section(info.metas[0], comment).set(
                "check",
                words,
                f"[services.{name}] check"
                + (f", on the port of {name}" if service.check[1:2] == (None,) else ""),
            )
        if port is not None:
            if service.port_option is None:
                raise ModelError(
                    where,
                    "port-option",
                    "missing: the service has a port and its role takes it in one of its options",
                    "SECTION:OPTION of the role, such as shop-config:port",
                )
            section, option = service.port_option.split(":", 1)
            need_option(info, name, "port-option", section, option, service.role)
            config.section(section, comment).set(
                option,
                str(port),
                f"the allocation: port of {name} "
                f"({'auto' if service.port == 'auto' else '[services.' + name + '] port'}), "
                f"into [services.{name}] port-option",
            )
        elif service.port_option is not None:
            raise ModelError(
                where, "port-option", "the service has no port", "a port, or no port-option"
            )
        self.add_links(config, name, info, comment)
        for section, options in service.settings.items():
            target = config.section(section, comment)
            for option, text in options.items():
                if option in target.options and not target.options[option].default:
                    raise ModelError(
                        f"{where}.settings.{section}",
                        option,
                        f"is compiled from {target.options[option].origin}",
                        "settings of options the compiler does not set",
                    )
                target.set(option, text, f"[{where}.settings.{section}] {option}")

    def add_links(self, config: HostConfig, name: str, info: RoleInfo, comment: str) -> None:
        service = self.model.services[name]
        if not service.links:
            return
        where = f"services.{name}"
        section = service.link_section or (service.port_option or "").split(":", 1)[0]
        if not section:
            raise ModelError(
                where,
                "link-section",
                "missing: the service has links and no port-option",
                "the section of the role that takes LINK-host and LINK-port, such as shop-config",
            )
        need_option(info, name, "link-section", section, None, service.role)
        target = config.section(section, comment)
        for link in service.links:
            addresses = self.wiring.addresses(link)
            target.set(
                f"{link}-host",
                " ".join(addresses) or "none",
                f"[services.{name}] links: the address of each host of {link} "
                f"([hosts.NAME] address, hosts from the allocation)",
            )
            port = self.allocation.ports.get(link)
            if port is not None:
                target.set(
                    f"{link}-port",
                    str(port),
                    f"[services.{name}] links: the port of {link} (the allocation)",
                )

    def draft(self, config: HostConfig, roles: list[str]) -> Draft:
        """The host's roles and refinements, read by buildout from this checkout's profiles
        and expanded: what the roles generate, with the model's refinements in."""
        local = [
            os.path.join(self.profiles, value.text[len(self.model.system.profiles) :].lstrip("/"))
            for value in config.extends
        ]
        text = config.body(extends=local)
        return load_draft(text, f"[hosts.{config.host}]")

    # -- built-in kinds ---------------------------------------------------------------------
    def refine_kinds(self, host: str, config: HostConfig) -> None:
        """The model's settings of a built-in kind refine the section the compiler wrote for
        it (``[services.lb.settings.lb] balance = "leastconn"``)."""
        for name in self.services_on(host):
            service = self.model.services[name]
            if not service.kind:
                continue
            for section, options in service.settings.items():
                where = f"services.{name}.settings.{section}"
                target = next((s for s in config.sections if s.name == section), None)
                if target is None:
                    raise ModelError(
                        where,
                        None,
                        f"not a section the {service.kind} service {name} is compiled into",
                        f"[{name}]",
                    )
                for option, text in options.items():
                    if option in target.options and not target.options[option].default:
                        raise ModelError(
                            where,
                            option,
                            f"is compiled from {target.options[option].origin}",
                            "settings of options the compiler does not set",
                        )
                    target.set(option, text, f"[{where}] {option}")

    def record_package(self, fleet: HostSection, name: str) -> None:
        service = self.model.services[name]
        if service.package:
            current = fleet.options.get("packages")
            line = " ".join(filter(None, (service.package, service.version)))
            lines = (current.text.split("\n") if current else []) + [line]
            origin = current.origin + ", " if current else ""
            fleet.set(
                "packages",
                "\n".join(dict.fromkeys(lines)),
                f"{origin}[services.{name}] package" + (", version" if service.version else ""),
            )
        for secret, reference in service.secrets.items():
            current = fleet.options.get("secrets")
            lines = (current.text.split("\n") if current else []) + [f"{name} {secret} {reference}"]
            fleet.set(
                "secrets",
                "\n".join(lines),
                "[services.NAME.secrets] of the services "
                "here: references only, the value is read on the host when it is applied",
            )


def check_output(
    directory: str, model: Model, configs: dict[str, str], force: bool = False
) -> Writes:
    """What writing ``HOST.cfg`` for each host into ``directory`` does, checked before
    anything is written (:mod:`.written`: a file fleet compile did not write, or one changed by
    hand since, is refused without ``force``); the compiled files of hosts gone from the model
    are removed. An older version's output (no manifest) names its compiled files of such
    hosts by their header."""
    mark = f"compiled by system-recipes from the system model {model.name} "
    legacy = [
        entry
        for entry in (sorted(os.listdir(directory)) if os.path.isdir(directory) else [])
        if entry.endswith(".cfg")
        and entry[:-4] not in configs
        and os.path.isfile(os.path.join(directory, entry))
        and mark in (read(os.path.join(directory, entry)) or "")[:200]
    ]
    files = {f"{host}.cfg": text for host, text in configs.items()}
    return check_writes(directory, "fleet compile", files, force, legacy)


def write(writes: Writes) -> list[str]:
    """Do what :func:`check_output` checked: one line per host."""
    writes.apply()
    said = []
    for entry, action in writes.actions.items():
        said.append(f"{entry[:-4]}: {action} {os.path.join(writes.directory, entry)}")
    for entry in writes.remove:
        path = os.path.join(writes.directory, entry)
        said.append(f"{entry[:-4]}: removed {path} (not a host of the model)")
    return said


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def body(text: str) -> str:
    """A compiled file without its header (the comment lines at the top)."""
    lines = text.split("\n")
    index = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return "\n".join(lines[index:])
