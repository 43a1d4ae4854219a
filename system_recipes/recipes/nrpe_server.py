"""``system_recipes:nrpe-server``: which hosts may query the NRPE server.

Writes ``NAME.cfg`` (``name`` defaults to the section name) into the NRPE include directory
(``/etc/nagios/nrpe.d`` on Debian, ``/etc/nrpe.d`` on Red Hat) with one
``allowed_hosts=`` line: the addresses, networks (CIDR) or host names of ``allowed-hosts``.

NRPE adds up every ``allowed_hosts`` line it reads (measured with the real nrpe 4.1: a line in
``nrpe.d`` does not replace ``nrpe.cfg``'s), and Debian's ``nrpe.cfg`` allows
``127.0.0.1,::1``. Those stay: the host's own processes, which can run its plugins anyway, may
ask. So the allowed set is exactly loopback plus ``allowed-hosts``, and the check refuses the
file when any other file the server reads (``nrpe.cfg``, ``include=``, ``include_dir=``)
allows a host beyond loopback and this list, or when ``nrpe.cfg`` does not include the
directory. A changed file restarts a running NRPE (``systemctl try-restart``, else SIGTERM
and its own command line again): on SIGHUP NRPE adds the new hosts but keeps those it allowed
before, so a reload would not take one away. An NRPE that is not running is skipped.

Example::

    [monitoring-access]
    recipe = system_recipes:nrpe-server
    allowed-hosts = 10.77.0.5
"""

from __future__ import annotations

import posixpath

from system_recipes.core.declare.errors import ConfigError, shown
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import (
    Name,
    Option,
    Schema,
    Text,
    Values,
    force_option,
    section_name,
)
from system_recipes.core.declare.specs import Check, FileSpec, PartSpec, Reload
from system_recipes.daemons.nrpe import MAX_LINE, main_config
from system_recipes.daemons.nrpe_server import NrpeServerContext, parse_allowed_host

SCHEMA = Schema(
    [
        Option(
            "name",
            Name(),
            default=section_name,
            help="the file name in the NRPE include directory, without .cfg",
        ),
        Option(
            "allowed-hosts",
            Text(),
            required=True,
            help="the hosts that may query NRPE besides loopback (which nrpe.cfg allows): "
            "addresses, networks (CIDR) or host names, one per line or separated by "
            "commas or spaces",
        ),
        force_option(),
    ]
)


class Recipe(BaseRecipe):
    """NRPE's allowed_hosts, in the include directory."""

    schema = SCHEMA
    recipe_name = "nrpe-server"

    def build(self, spec: PartSpec, values: Values) -> None:
        hosts: list[str] = []
        for word in values["allowed-hosts"].replace(",", " ").split():
            try:
                entry = parse_allowed_host(word)
            except ValueError as error:
                raise ConfigError(
                    self.name,
                    "allowed-hosts",
                    str(error),
                    "addresses, networks (CIDR) or host names",
                ) from None
            if entry in hosts:
                raise ConfigError(
                    self.name, "allowed-hosts", f"{shown(word)} is given twice", "each host once"
                )
            hosts.append(entry)
        if not hosts:
            raise ConfigError(
                self.name, "allowed-hosts", "no host", "addresses, networks (CIDR) or host names"
            )
        line = "allowed_hosts=" + ",".join(hosts)
        if len(line.encode()) > MAX_LINE:
            raise ConfigError(
                self.name,
                "allowed-hosts",
                f"{len(hosts)} hosts make a line of {len(line.encode())} bytes",
                f"at most {MAX_LINE} (NRPE's buffer)",
            )
        content = (
            f"# NRPE clients of [{self.name}], written by system-recipes: edits here are "
            "overwritten.\n# NRPE adds this to the loopback addresses nrpe.cfg allows.\n"
            f"{line}\n"
        ).encode()
        path = posixpath.join(self.layout.nrpe_include, values.name + ".cfg")
        restart = Reload("nrpe-restart", self.layout.nrpe_service)
        spec.force = values.force
        spec.files.append(
            FileSpec(
                path=path,
                content=content,
                mode=0o644,
                checks=[Check("nrpe-server", NrpeServerContext(main_config(self.settings)))],
                reloads=[restart],
            )
        )
        spec.removal_reloads.append(restart)
