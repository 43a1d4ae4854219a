"""``system_recipes:postgresql-access``: who may connect to a PostgreSQL cluster, and where it
listens.

Writes two files into the cluster's configuration directory (Debian:
``/etc/postgresql/VERSION/CLUSTER``):

- ``conf.d/NAME.conf`` (``name`` defaults to the section name): ``listen_addresses``, ``port``
  and ``hba_file`` pointing to the next file. Debian's ``postgresql.conf`` reads
  ``include_dir = 'conf.d'``; PostgreSQL 15's ``pg_hba.conf`` has no include directive, so
  the recipe owns a whole hba file of its own instead of editing Debian's.
- ``pg_hba.NAME.conf``: Debian's local (Unix socket) lines -- ``local all postgres peer``,
  ``local all all peer``, ``local replication all peer``, so the cluster stays administrable
  by the postgres account -- then one ``host DATABASE USER ADDRESS scram-sha-256`` line per
  line of ``clients``. Nothing else connects over TCP: Debian's own ``127.0.0.1/32`` and
  ``::1/128`` lines are not kept (list them as clients where wanted).

``version`` and ``cluster`` default to the single cluster found below the root
(``/etc/postgresql/*/*``). The hba file is checked by a parser of PostgreSQL 15's documented
format (no program reads one offline: the tests compare that parser with a real server's
``pg_hba_file_rules``); the fragment by ``postgres -C`` on a copy of the cluster's
configuration with the fragment in place, which must report this file's ``hba_file``,
``port`` and ``listen_addresses`` (a later ``conf.d`` file or ``ALTER SYSTEM`` would win
silently). A changed file reloads a running cluster once (``systemctl reload
postgresql@VERSION-CLUSTER``, else SIGHUP to its postmaster), which is then asked whether it
took the rules; ``port``, ``listen_addresses`` and ``hba_file`` take effect only at a restart,
which the run then reports as a problem naming the command -- or, with ``restart = on``, does
once, after the commit (``pg_ctlcluster VERSION CLUSTER restart``, ``systemctl restart`` under
systemd), and asks the cluster again. A cluster that is not running is skipped.

Example::

    [db-access]
    recipe = system_recipes:postgresql-access
    clients =
        10.77.0.11/32 shop shop
        10.77.0.12/32 shop shop
    listen = *
    restart = on
"""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import (
    Choice,
    Line,
    Lines,
    Name,
    Option,
    PortNumber,
    Schema,
    Values,
    force_option,
    section_name,
)
from system_recipes.core.declare.specs import Check, FileSpec, PartSpec, Reload
from system_recipes.core.hooks import validate
from system_recipes.daemons.postgresql import (
    PostgresqlConfContext,
    cluster_directory,
    clusters,
    quote,
)
from system_recipes.daemons.postgresql_hba import (
    DEBIAN_LOCAL_LINES,
    HOSTNAME,
    NAME_TOKEN,
    HbaContext,
)

CLIENT_SYNTAX = "ADDRESS[/PREFIX] DATABASE USER"
METHOD = "scram-sha-256"

SCHEMA = Schema(
    [
        Option(
            "name",
            Name(),
            default=section_name,
            help="names the files: conf.d/NAME.conf and pg_hba.NAME.conf in the cluster's "
            "configuration directory",
        ),
        Option(
            "clients",
            Lines(),
            default=[],
            help=f"one client per line: {CLIENT_SYNTAX}; an address without a prefix is one "
            "host (/32, /128); each becomes a `host` line with scram-sha-256 (a password) "
            "in the order given; no line: nothing connects over TCP",
        ),
        Option(
            "listen",
            Line(),
            default="localhost",
            help="listen_addresses: `*`, or addresses and host names separated by commas "
            "(takes effect at the cluster's next restart)",
        ),
        Option(
            "port",
            PortNumber(),
            default=5432,
            help="the cluster's port (takes effect at its next restart)",
        ),
        Option(
            "version",
            Line(r"[0-9][0-9.]*", "a PostgreSQL major version such as 15"),
            default=None,
            help="the PostgreSQL major version of the cluster; default: the single version "
            "directory below /etc/postgresql",
        ),
        Option(
            "cluster",
            Name(),
            default=None,
            help="the cluster name (Debian's postgresql-common); default: the single cluster "
            "of that version",
        ),
        Option(
            "restart",
            Choice("off", "on"),
            default="off",
            help="on: after the commit, restart the cluster when a setting it changed "
            "takes effect only at a restart (port, listen_addresses, hba_file), and check "
            "that it took them; off: the run reports that the cluster needs a restart",
        ),
        force_option(),
    ]
)


@dataclass(frozen=True)
class Client:
    network: str
    database: str
    user: str
    method: str = METHOD


def parse_client(line: str) -> Client:
    """One ``clients`` line; raises ValueError with the problem."""
    words = line.split()
    if len(words) != 3:
        raise ValueError(f"{shown(line)} has {len(words)} words, not 3")
    address, database, user = words
    try:
        network = ipaddress.ip_network(address, strict=True)
    except ValueError as error:
        raise ValueError(f"{shown(address)} is not an address or network ({error})") from None
    for what, word in (("database", database), ("user", user)):
        if not NAME_TOKEN.fullmatch(word):
            raise ValueError(
                f"{what} {shown(word)} is not a plain name (letters, digits, "
                "'_', '.', '$', '-'; at most 63)"
            )
    return Client(network.with_prefixlen, database, user)


def parse_listen(text: str) -> str:
    items = [item.strip() for item in text.split(",")]
    for item in items:
        if item == "*" or item == "localhost":
            continue
        try:
            ipaddress.ip_address(item)
        except ValueError:
            if not HOSTNAME.fullmatch(item) or item.startswith("."):
                raise ValueError(f"{shown(item)} is not *, an address or a host name") from None
    return ",".join(items)


class Recipe(BaseRecipe):
    """A cluster's listen address, port and client authentication rules."""

    schema = SCHEMA
    recipe_name = "postgresql-access"

    def _cluster(self, values: Values) -> tuple[str, str]:
        template = self.layout.postgresql_config
        if "{version}" not in template and "{cluster}" not in template:
            return values.version or "", values.cluster or ""
        version, cluster = values.version, values.cluster
        if version and cluster:
            return version, cluster
        found = [
            (v, c)
            for v, c in clusters(self.settings)
            if (not version or v == version) and (not cluster or c == cluster)
        ]
        where = template.format(version=version or "*", cluster=cluster or "*")
        if not found:
            option = "cluster" if version else "version"
            raise ConfigError(
                self.name,
                option,
                f"no PostgreSQL cluster in {where}",
                "the PostgreSQL server installed with a cluster, or version and cluster naming one",
            )
        if len({v for v, _ in found}) > 1:
            raise ConfigError(
                self.name,
                "version",
                "several PostgreSQL versions: " + ", ".join(sorted({v for v, _ in found})),
                "version = one of them",
            )
        if len(found) > 1:
            raise ConfigError(
                self.name,
                "cluster",
                "several clusters: " + ", ".join(c for _, c in found),
                "cluster = one of them",
            )
        return found[0]

    def build(self, spec: PartSpec, values: Values) -> None:
        clients: list[Client] = []
        for line in values.clients:
            try:
                client = parse_client(line)
            except ValueError as error:
                raise ConfigError(self.name, "clients", str(error), CLIENT_SYNTAX) from None
            if client in clients:
                raise ConfigError(
                    self.name, "clients", f"{shown(line)} is given twice", "each client once"
                )
            clients.append(client)
        try:
            listen = parse_listen(values.listen)
        except ValueError as error:
            raise ConfigError(
                self.name,
                "listen",
                str(error),
                "*, or addresses and host names separated by commas",
            ) from None
        version, cluster = self._cluster(values)
        directory = cluster_directory(self.layout, version, cluster)
        hba_path = posixpath.join(directory, f"pg_hba.{values.name}.conf")
        conf_path = posixpath.join(directory, "conf.d", f"{values.name}.conf")
        service = Reload(
            "postgresql-restart" if values.restart == "on" else "postgresql",
            self.layout.postgresql_service.format(version=version, cluster=cluster),
        )
        spec.force = values.force

        hba = self.render(
            "pg_hba.j2",
            {"section": self.name, "clients": clients, "local_lines": DEBIAN_LOCAL_LINES},
        )
        origins = validate.trace(hba, [("clients", _written(c)) for c in clients])
        # postgres reads it as its own group: Debian's is postgres:postgres 0640
        spec.files.append(
            FileSpec(
                path=hba_path,
                content=hba,
                mode=0o640,
                group="postgres",
                checks=[Check("postgresql-hba", HbaContext(origins))],
                reloads=[service],
            )
        )
        expected = (
            ("hba_file", hba_path),
            ("port", str(values.port)),
            ("listen_addresses", listen),
        )
        conf = self.render(
            "postgresql-access.conf.j2",
            {
                "section": self.name,
                "hba_file": hba_path,
                "hba": quote(hba_path),
                "port": values.port,
                "listen": quote(listen),
            },
        )
        programs = self.layout.postgresql_programs.format(version=version)
        spec.files.append(
            FileSpec(
                path=conf_path,
                content=conf,
                mode=0o644,
                checks=[
                    Check(
                        "postgresql-conf",
                        PostgresqlConfContext(directory, programs, expected=expected),
                    )
                ],
                reloads=[service],
            )
        )
        spec.removal_reloads.append(service)


def _written(client: Client) -> str:
    return " ".join(["host", client.database, client.user, client.network, client.method])
