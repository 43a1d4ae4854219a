"""``system_recipes:haproxy``: one load-balanced service, a haproxy frontend and its backend.

Writes ``NAME.cfg`` (``name`` defaults to the section name) into haproxy's include directory
(``/etc/haproxy/conf.d``): a ``frontend NAME`` listening on every ``bind`` address and a
``backend NAME`` with one ``server`` per line of ``backends``. The file has no ``global`` and no
``defaults``: haproxy reads it after the package's ``/etc/haproxy/haproxy.cfg``, which the
recipe never writes, and whose ``defaults`` (timeouts, logging) apply to it.

The package on Red Hat starts haproxy with ``-f /etc/haproxy/conf.d`` already. Debian's reads
only ``haproxy.cfg``, so on Debian the section also writes a systemd drop-in
(``/etc/systemd/system/haproxy.service.d/system-recipes-NAME.conf``) that adds the directory
as Red Hat's unit does; ``/etc/default/haproxy`` stays the package's. Without systemd, Debian's
init script reads only ``/etc/default/haproxy``: add ``EXTRAOPTS="-f /etc/haproxy/conf.d"``
there once (the reload reports a haproxy that does not read the directory).

The file is checked by ``haproxy -c`` together with the main file and every other file of the
directory (a frontend name another file uses is refused, naming ``name``). When it changes,
or the part is dropped, a running haproxy is reloaded gracefully at the end of the run:
``systemctl reload haproxy`` under systemd (the unit checks the configuration, then the master
re-executes itself and keeps its pid), else SIGUSR2 to the master in ``/run/haproxy.pid``, or,
for a haproxy started without a master (``-D``), a new process with ``-sf`` the old ones.
A haproxy that is not running is reported as skipped. When the drop-in is new, systemd
re-reads its units, and a running haproxy that does not read the directory yet is restarted
once (a master keeps the command line it was started with across reloads).

Example::

    [lb]
    recipe = system_recipes:haproxy
    bind = *:8080
    backends =
        shop-1 10.77.0.11:20000
        shop-2 10.77.0.12:20000
    health-check = /health
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from system_recipes.core.declare.datatypes import format_endpoint, parse_endpoint
from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.rules import refused_with
from system_recipes.core.declare.schema import (
    Choice,
    Line,
    Lines,
    Option,
    OptionType,
    Schema,
    Values,
    force_option,
    section_name,
)
from system_recipes.core.declare.specs import Check, FileSpec, PartSpec, Reload
from system_recipes.core.hooks import validate
from system_recipes.daemons.haproxy import HaproxyContext, unit_dropin

# haproxy's proxy and server names: letters, digits, '-', '_', '.', ':' (no ':' here: the name
# is also a file name)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_EXPECTED = "a haproxy name: letters, digits, '-', '_' and '.', at most 64"
# what haproxy's parser would read as a comment, quote, escape or variable is left out
PATH = re.compile(r"/[A-Za-z0-9._~!&()*+,;=:@%/?-]{0,200}")


def endpoint(text: str, wildcard: bool) -> str:
    """``ADDRESS:PORT`` as haproxy writes it (:mod:`..core.datatypes`, as the system compiler
    writes it); ValueError with the problem."""
    return format_endpoint(*parse_endpoint(text, wildcard))


class Endpoint(OptionType):
    def __init__(self, wildcard: bool):
        self.wildcard = wildcard
        self.expected = (
            "ADDRESS:PORT (ADDRESS: *, an IPv4 address, [IPv6] or a host name)"
            if wildcard
            else "ADDRESS:PORT (an IPv4 address, [IPv6] or a host name)"
        )

    def parse(self, text: str) -> str:
        return endpoint(text.strip(), self.wildcard)


@dataclass(frozen=True)
class Server:
    name: str
    address: str


class Servers(OptionType):
    expected = f"one server per line: NAME ADDRESS:PORT, each name once ({NAME_EXPECTED})"

    def parse(self, text: str) -> list[Server]:
        servers: list[Server] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            if len(words) != 2:
                raise ValueError(f"{shown(line)} is not NAME ADDRESS:PORT")
            if not NAME.fullmatch(words[0]):
                raise ValueError(f"server name {shown(words[0])} is not a haproxy name")
            if any(s.name == words[0] for s in servers):
                raise ValueError(f"server {words[0]} is given twice")
            servers.append(Server(words[0], endpoint(words[1], wildcard=False)))
        if not servers:
            raise ValueError("no servers")
        return servers


class Binds(Lines):
    def __init__(self):
        super().__init__(Endpoint(wildcard=True))

    def parse(self, text: str) -> list[str]:
        binds = super().parse(text)
        for index, address in enumerate(binds):
            if address in binds[:index]:
                raise ValueError(f"{address} is given twice")
        if not binds:
            raise ValueError("no address")
        return binds


SCHEMA = Schema(
    [
        Option(
            "name",
            Line(NAME.pattern, NAME_EXPECTED),
            default=section_name,
            help="the name of the frontend, of the backend and of the file in the include "
            "directory (NAME.cfg)",
        ),
        Option(
            "bind",
            Binds(),
            required=True,
            help="the addresses the frontend listens on, one per line: ADDRESS:PORT, `*:PORT` "
            "for every address",
        ),
        Option(
            "mode",
            Choice("http", "tcp"),
            default="http",
            help="`http` (haproxy reads the requests) or `tcp` (it passes the bytes on)",
        ),
        Option(
            "backends",
            Servers(),
            required=True,
            help="the servers, one per line: NAME ADDRESS:PORT",
        ),
        Option(
            "health-check",
            Line(PATH.pattern, "a path such as /health"),
            default=None,
            help="mode http: haproxy asks `GET PATH` of each server (`option httpchk`; 2xx and "
            "3xx answers are healthy) and sends no requests to a server that fails it",
        ),
        Option(
            "balance",
            Choice("roundrobin", "leastconn", "source"),
            default="roundrobin",
            help="how requests are spread over the servers",
        ),
        force_option(),
    ],
    rules=[
        refused_with(
            "health-check",
            when=("mode", "tcp"),
            problem="is an HTTP request, sent only in mode http",
            expected="mode = http, or no health-check",
        ),
    ],
)


class Recipe(BaseRecipe):
    """A haproxy frontend and backend in the include directory."""

    schema = SCHEMA
    recipe_name = "haproxy"

    def build(self, spec: PartSpec, values: Values) -> None:
        name = values.name
        if not NAME.fullmatch(name):  # the default, the section name, is not parsed
            raise ConfigError(
                self.name, "name", f"{shown(name)} is not a haproxy name", NAME_EXPECTED
            )
        layout = self.layout
        context = {
            "section": self.name,
            "main": layout.haproxy_config,
            "name": name,
            "mode": values.mode,
            "binds": values.bind,
            "balance": values.balance,
            "health_check": values.health_check,
            "servers": values.backends,
        }
        content = self.render("haproxy.cfg.j2", context)
        claims = [
            ("name", f"frontend {name}"),
            ("mode", f"mode {values.mode}"),
            ("mode", "option tcplog"),
            *(("bind", f"bind {address}") for address in values.bind),
            ("name", f"default_backend {name}"),
            ("name", f"backend {name}"),
            ("mode", f"mode {values.mode}"),
            ("balance", f"balance {values.balance}"),
            ("health-check", f"option httpchk GET {values.health_check}"),
            *(
                (
                    "backends",
                    f"server {s.name} {s.address}" + (" check" if values.health_check else ""),
                )
                for s in values.backends
            ),
        ]
        service = layout.haproxy_service
        spec.force = values.force
        spec.files.append(
            FileSpec(
                path=posixpath.join(layout.haproxy_include, name + ".cfg"),
                content=content,
                mode=0o644,
                checks=[
                    Check(
                        "haproxy",
                        HaproxyContext(
                            layout.haproxy_config, origins=validate.trace(content, claims)
                        ),
                    )
                ],
                reloads=[Reload("haproxy", service)],
            )
        )
        spec.removal_reloads.append(Reload("haproxy", service))
        if layout.haproxy_dropin:
            spec.files.append(
                FileSpec(
                    path=posixpath.join(layout.haproxy_dropin, f"system-recipes-{name}.conf"),
                    content=unit_dropin(layout.haproxy_include, self.name).encode(),
                    mode=0o644,
                    reloads=[Reload("haproxy-restart", service)],
                )
            )
            spec.removal_reloads.append(Reload("haproxy-restart", service))
