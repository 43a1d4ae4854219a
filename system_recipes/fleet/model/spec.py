"""The system model (level 4): one TOML file naming the hosts, the services and who monitors.

Declared once in :mod:`.declaration`; here :func:`load_model` checks a file against the
declaration and the references between its tables, and :func:`reference_markdown` writes
docs/systems-reference.md from it.

>>> model = parse_model({"system": {"name": "demo", "profiles": "/opt/shop/profiles"},
...     "hosts": {"app1": {"address": "10.0.0.1", "memory": "1G"}},
...     "services": {"web": {"role": "roles/app-server.cfg", "port": "auto"}}})
>>> model.services["web"].instances, model.hosts["app1"].memory
(1, 1073741824)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from typing import Any

from system_recipes.core.buildout.reading import byte_problem
from system_recipes.core.declare.errors import shown
from system_recipes.core.declare.schema import Values
from system_recipes.fleet.model.declaration import KINDS, MODEL
from system_recipes.fleet.model.tables import ModelError
from system_recipes.fleet.model.values import looks_secret


@dataclass(frozen=True)
class Model:
    """A checked model. ``hosts`` and ``services`` map names to their typed tables (in name
    order); a table's keys read as attributes (``service.max_unavailable``)."""

    path: str
    system: Values
    hosts: dict[str, Values]
    services: dict[str, Values]
    monitoring: Values | None

    @property
    def name(self) -> str:
        return self.system.name

    @property
    def port_range(self) -> tuple[int, int]:
        return self.system.port_range


def load_model(path: str) -> Model:
    """The model in ``path``, checked; raises :class:`ModelError` (one line) on any mistake."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as error:
        raise ModelError(None, None, error.strerror or str(error), source=path) from None
    except UnicodeDecodeError as error:
        raise ModelError(None, None, byte_problem(raw, error.start), source=path) from None
    except tomllib.TOMLDecodeError as error:
        raise ModelError(None, None, f"not valid TOML: {error}", source=path) from None
    return parse_model(data, path)


def parse_model(data: dict[str, Any], path: str = "model") -> Model:
    values = MODEL.parse_table("", data)
    model = Model(
        path,
        values.system,
        dict(sorted(values.hosts.items())),
        dict(sorted(values.services.items())),
        values.monitoring,
    )
    check_references(model)
    return model


def check_references(model: Model) -> None:
    """What one table says about another: names that exist, no cycles, one port per meaning."""
    addresses: dict[str, str] = {}
    for name, host in model.hosts.items():
        if host.address in addresses:
            raise ModelError(
                f"hosts.{name}",
                "address",
                f"{shown(host.address)} is already the address of {addresses[host.address]}",
                "a unique address",
            )
        addresses[host.address] = name
    if model.monitoring is not None:
        need_host(model, "monitoring", "host", model.monitoring.host)
    for name, service in model.services.items():
        check_service(model, name, service)
    check_cycles(model)


def check_service(model: Model, name: str, service: Values) -> None:
    """One service's references, in the order they are reported: its role or kind, its port,
    its hosts, its links, its backends, its settings."""
    where = f"services.{name}"
    _check_role_or_kind(where, service)
    _check_port(model, where, service)
    for host in service.placement.hosts:
        need_host(model, f"{where}.placement", "hosts", host)
    for link in service.links:
        if link == name or link not in model.services:
            raise ModelError(
                where,
                "links",
                f"{shown(link)} is not another service",
                "names of [services.NAME] tables",
            )
    check_backends(model, name, service)
    for section, options in service.settings.items():
        for option in options:
            if looks_secret(option):
                raise ModelError(
                    f"{where}.settings.{section}",
                    option,
                    "a literal secret (secrets by reference only; the value is not shown)",
                    f'secrets = {{ {option} = "file:/PATH" }} in [{where}]',
                )


def _check_role_or_kind(where: str, service: Values) -> None:
    """A service has a role or a kind; the options of a role are not a kind's."""
    if (service.role is None) == (service.kind is None):
        raise ModelError(
            where,
            "role",
            "a service has a role or a kind, not both" if service.role else "missing",
            f"a role or a kind ({', '.join(KINDS)})",
        )
    for key in ("port-option", "link-section"):
        if service.kind and service[key] is not None:
            raise ModelError(
                where,
                key,
                f"only a service with a role has one (a "
                f"{service.kind} service is compiled by system-recipes)",
                "no " + key + " here",
            )


def _check_port(model: Model, where: str, service: Values) -> None:
    """A kind's service has a port, a fixed port is outside the automatic range, and a check
    without a port of its own has the service's."""
    low, high = model.port_range
    if service.kind and service.port is None:
        raise ModelError(
            where,
            "port",
            f"missing: a {service.kind} service listens on one",
            'a port number or "auto"',
        )
    if isinstance(service.port, int) and low <= service.port <= high:
        raise ModelError(
            where,
            "port",
            f"{service.port} is inside the automatic range {low}-{high}",
            'a port outside it, or "auto"',
        )
    if (
        service.check
        and service.check[0] != "none"
        and service.check[1] is None
        and service.port is None
    ):
        raise ModelError(
            where,
            "check",
            "names no port and the service has none",
            "a check with a PORT, or a port for the service",
        )


def need_host(model: Model, where: str, key: str, host: str) -> None:
    if host not in model.hosts:
        raise ModelError(
            where, key, f"{shown(host)} is not a host of the model", "names of [hosts.NAME] tables"
        )


def check_backends(model: Model, name: str, service: Values) -> None:
    where = f"services.{name}"
    if service.backends is None:
        if service.kind == "haproxy":
            raise ModelError(
                where,
                "backends",
                "missing: a load balancer needs backends",
                "the name of the service it balances",
            )
        return
    if service.kind != "haproxy":
        raise ModelError(where, "backends", "only a load balancer has backends", 'kind = "haproxy"')
    backend = model.services.get(service.backends)
    if backend is None or service.backends == name:
        raise ModelError(
            where,
            "backends",
            f"{shown(service.backends)} is not another service",
            "the name of a [services.NAME] table",
        )
    if backend.port is None:
        raise ModelError(
            where, "backends", f"{service.backends} has no port", "a service with a port"
        )


def check_cycles(model: Model) -> None:
    """Links say who starts first: a cycle would leave no order."""
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for link in model.services[name].links:
            if state.get(link) == 1:
                cycle = path[path.index(link) :] + [link]
                raise ModelError(
                    f"services.{cycle[0]}",
                    "links",
                    "a cycle " + " -> ".join(cycle),
                    "links without cycles",
                )
            if link not in state:
                visit(link, path + [link])
        state[name] = 2

    for name in model.services:
        if name not in state:
            visit(name, [name])


def check_words(service: Values, port: int | None) -> str | None:
    """The meta-recipe's ``check`` value for a service whose port is ``port`` (allocated):
    ``http 20000 /health``; None when the model leaves the role's own check."""
    if service.check is None:
        return None
    if service.check[0] == "none":
        return "none"
    kind, own, *path = service.check
    return " ".join([kind, str(own if own is not None else port), *path])


def lock_path(model_path: str) -> str:
    """``shop.toml`` -> ``shop.lock.toml``, beside it."""
    root, ext = os.path.splitext(model_path)
    return f"{root}.lock{ext or '.toml'}"


def reference_markdown() -> str:
    """docs/systems-reference.md, generated from the declaration."""
    intro = (
        "# System model reference\n\nGenerated from `system_recipes/fleet/model/declaration.py` (do not "
        "edit). A walk-through: [systems.md](systems.md).\n\n"
    )
    return intro + MODEL.markdown("##")
