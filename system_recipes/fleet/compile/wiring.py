"""Interlocking services: the sections the compiler writes itself, from the whole model.

- a service of kind ``haproxy`` becomes a ``system_recipes:haproxy`` section named after it:
  ``bind = *:PORT``, one backend ``INSTANCE ADDRESS:PORT`` per instance of the service it
  balances, mode ``http`` with that service's health-check path when its check is ``http``
  (else ``tcp``), ``balance = roundrobin`` (a model setting may change it);
- a service of kind ``postgresql`` becomes a ``system_recipes:postgresql-access`` section:
  ``listen = *``, its port, and one client ``ADDRESS/32 SERVICE SERVICE`` (``/128`` for IPv6,
  a DNS name as it is) per host running a service that links to it -- the database and the
  user are named after the linking service;
- a built-in kind's check becomes a ``system_recipes:nrpe`` section ``NAME-nrpe``, written as
  the service meta-recipe writes one (``check_NAME_tcp check_tcp -H 127.0.0.1 -p PORT``);
- with a ``[monitoring]`` host, every host with checks gets ``[nrpe-server]``
  (``system_recipes:nrpe-server``, ``allowed-hosts`` = the monitoring host's address, and no
  other), and the monitoring host ``[monitoring]`` (``system_recipes:nagios``, file
  ``SYSTEM.cfg``): a Nagios host per host of the model, and per check an NRPE service
  ``HOST CHECK INSTANCE CHECK``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from system_recipes.core.declare.datatypes import format_endpoint
from system_recipes.fleet.compile.config import HostConfig, HostSection, Value
from system_recipes.fleet.compile.roles import Draft
from system_recipes.fleet.model.allocate import Allocation, Instance
from system_recipes.fleet.model.spec import Model, check_words
from system_recipes.fleet.model.tables import ModelError

HTTP_THRESHOLDS = ("2", "5")
TCP_THRESHOLDS = ("1", "3")
#: the sections the compiler names itself on a host (besides those of built-in kinds)
OWN_SECTIONS = ("fleet", "nrpe-server", "monitoring")


class Wiring:
    def __init__(self, model: Model, allocation: Allocation):
        self.model, self.allocation = model, allocation
        #: host -> [(instances, check name, where the name comes from)]
        self.checks: dict[str, list[tuple[str, str, str]]] = {}

    def address(self, host: str) -> str:
        return self.model.hosts[host].address

    def addresses(self, service: str) -> list[str]:
        """The addresses of the hosts of ``service``'s instances, in instance order, once."""
        found = [self.address(i.host) for i in self.allocation.instances(service)]
        return list(dict.fromkeys(found))

    def own_section(
        self,
        config: HostConfig,
        draft: Draft | None,
        name: str,
        service: str,
        comment: str,
        origin: str,
    ) -> HostSection:
        if draft is not None and name in draft.sections:
            raise ModelError(
                f"services.{service}",
                None,
                f"compiles into [{name}] on "
                f"{config.host}, and a role there has a section of that name",
                "distinct names of services and role sections",
            )
        config.parts.append(Value(name, origin))
        return config.section(name, comment)

    # -- built-in kinds -----------------------------------------------------------------------
    def kind_sections(self, config: HostConfig, name: str, draft: Draft | None) -> None:
        service = self.model.services[name]
        if service.kind is None:
            return
        if name in OWN_SECTIONS or f"{name}-nrpe" in OWN_SECTIONS:
            raise ModelError(
                f"services.{name}",
                None,
                f"its section [{name}] is one the compiler writes",
                f"a name other than {', '.join(OWN_SECTIONS)}",
            )
        port = self.allocation.ports[name]
        where = f"[services.{name}]"
        comment = f"{where} kind = {service.kind}"
        section = self.own_section(config, draft, name, name, comment, f"{where} kind")
        if service.kind == "haproxy":
            self.haproxy(section, name, port)
        else:
            self.postgresql(section, name, port)
        words = check_words(service, port)
        if words and words != "none":
            line = nrpe_line(name, words)
            nrpe = self.own_section(
                config,
                draft,
                f"{name}-nrpe",
                name,
                f"{where} check, on this host's NRPE",
                f"{where} check",
            )
            nrpe.set("recipe", "system_recipes:nrpe", f"{where} check")
            nrpe.set("name", name, f"{where}: the service's name")
            nrpe.set(
                "checks",
                line,
                f"{where} check" + (f", on the port of {name}" if service.check[1] is None else ""),
            )
            instances = " ".join(i.name for i in self.allocation.instances(name, config.host))
            self.checks.setdefault(config.host, []).append(
                (instances, line.split()[0], f"[{name}-nrpe] checks")
            )

    def haproxy(self, section: HostSection, name: str, port: int) -> None:
        service = self.model.services[name]
        backend = self.model.services[service.backends]
        where = f"[services.{name}]"
        section.set("recipe", "system_recipes:haproxy", f"{where} kind")
        section.set("name", name, f"{where}: the service's name")
        section.set(
            "bind",
            format_endpoint("*", port),
            f"{where} port" + (" (the allocation)" if service.port == "auto" else ""),
        )
        http = backend.check is not None and backend.check[0] == "http"
        section.set(
            "mode",
            "http" if http else "tcp",
            f"[services.{service.backends}] check is {'http' if http else 'not http'}",
            default=True,
        )
        servers = [
            f"{i.name} {format_endpoint(self.address(i.host), backend_port(i))}"
            for i in self.allocation.instances(service.backends)
        ]
        section.set(
            "backends",
            "\n".join(servers),
            f"{where} backends = {service.backends}: "
            f"each instance of it, its host's [hosts.NAME] address and the port of "
            f"{service.backends} (the allocation)",
        )
        if http:
            section.set(
                "health-check", backend.check[2], f"[services.{service.backends}] check (its path)"
            )
        section.set("balance", "roundrobin", "system-recipes' default", default=True)

    def postgresql(self, section: HostSection, name: str, port: int) -> None:
        where = f"[services.{name}]"
        section.set("recipe", "system_recipes:postgresql-access", f"{where} kind")
        section.set("name", name, f"{where}: the service's name")
        clients = []
        for other, service in self.model.services.items():
            if name in service.links:
                for address in self.addresses(other):
                    clients.append(f"{client_address(address)} {other} {other}")
        if clients:
            users = sorted({line.split()[1] for line in clients})
            section.set(
                "clients",
                "\n".join(clients),
                "the hosts of the services that link to it ("
                + ", ".join(f"[services.{u}] links" for u in users)
                + "); database and user named after the service",
            )
        section.set(
            "listen",
            "*",
            f"{where}: the hosts of the services linking to it reach it over the network",
            default=True,
        )
        section.set("port", str(port), f"{where} port")

    # -- checks of the roles -----------------------------------------------------------------
    def role_checks(
        self,
        config: HostConfig,
        roles: list[str],
        draft: Draft,
        role_parts: Callable[[str], list[str]],
    ) -> None:
        """The checks the host's roles define (their expansion's facts), by the services whose
        role has the part."""
        for part, names in draft.checks.items():
            owners = [name for name in roles if part in role_parts(name)]
            instances = " ".join(
                i.name for name in owners for i in self.allocation.instances(name, config.host)
            )
            source = (
                f"the nrpe-checks fact of [{part}]'s expansion"
                if part in draft.expansions
                else f"[{part}] checks"
            )
            for check in names:
                self.checks.setdefault(config.host, []).append(
                    (instances or config.host, check, source)
                )

    # -- monitoring ---------------------------------------------------------------------------
    def monitor(self, configs: dict[str, HostConfig]) -> None:
        if self.model.monitoring is None:
            return
        watcher = self.model.monitoring.host
        address = self.address(watcher)
        for host, checks in sorted(self.checks.items()):
            if not checks:
                continue
            section = self.own_section(
                configs[host],
                None,
                "nrpe-server",
                host,
                "NRPE answers the monitoring host only",
                "[monitoring] host: this host has checks",
            )
            section.set("recipe", "system_recipes:nrpe-server", "[monitoring] host")
            section.set(
                "allowed-hosts",
                address,
                f"[monitoring] host = {watcher}: [hosts.{watcher}] address",
            )
        config = configs[watcher]
        section = self.own_section(
            config,
            None,
            "monitoring",
            watcher,
            "Nagios: every host of the system and every check",
            "[monitoring] host",
        )
        section.set("recipe", "system_recipes:nagios", "[monitoring] host")
        section.set("name", self.model.name, "[system] name")
        section.set(
            "hosts",
            "\n".join(f"{host} {self.address(host)}" for host in self.model.hosts),
            "[hosts.NAME] address of every host",
        )
        lines = [
            f"{host} {check} {instances} {check}"
            for host, checks in sorted(self.checks.items())
            for instances, check, _ in checks
        ]
        if lines:
            sources = sorted({source for checks in self.checks.values() for _, _, source in checks})
            section.set(
                "nrpe-checks", "\n".join(lines), "the checks of each host: " + "; ".join(sources)
            )


def nrpe_line(name: str, words: str) -> str:
    """An NRPE check line for ``check_words`` of a built-in kind (the meta-recipe's form)."""
    kind, port, *path = words.split()
    if kind == "http":
        return (
            f"check_{name}_http check_http -H 127.0.0.1 -p {port} -u {path[0]} "
            f"warning={HTTP_THRESHOLDS[0]} critical={HTTP_THRESHOLDS[1]}"
        )
    return (
        f"check_{name}_tcp check_tcp -H 127.0.0.1 -p {port} "
        f"warning={TCP_THRESHOLDS[0]} critical={TCP_THRESHOLDS[1]}"
    )


def backend_port(instance: Instance) -> int:
    assert instance.port is not None  # the model refuses backends of a service without a port
    return instance.port


def client_address(address: str) -> str:
    """An hba address: one host (``/32``, ``/128``), or a DNS name as it is."""
    try:
        return f"{address}/{ipaddress.ip_address(address).max_prefixlen}"
    except ValueError:
        return address
