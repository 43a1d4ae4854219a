"""``system_recipes:package``: facts about an installed system package, for other sections.

Reads the rpm database (honouring ``[system-recipes] root`` and ``dbpath``) and, on Debian
layouts, dpkg's. Exposes ``version``, ``release``, ``prefix`` (its install directory: the
``prefix`` option, the package's relocation prefix, or the common directory of its files) and
``files``. A package that is not installed stops the run, naming the section, before anything
is written. When the package is upgraded, every section that uses ``${pkg:version}`` (or any
other exposed value) changes, so buildout updates exactly those parts on the next run. The
manifest records the version configured; ``restart`` names the services that run the package,
restarted once after the run that sees a new version (``system_recipes:service`` sets it).

Example::

    [shop-package]
    recipe = system_recipes:package
    name = shop
    dbpath = /var/lib/rpm
    restart = supervisor shop
"""

from __future__ import annotations

from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.declare.recipe import Recipe as BaseRecipe
from system_recipes.core.declare.schema import (
    AbsolutePath,
    Choice,
    Line,
    Option,
    Schema,
    Values,
    section_name,
)
from system_recipes.core.declare.specs import PartSpec
from system_recipes.core.hooks import reload
from system_recipes.daemons.packages import NotInstalled, common_prefix, query_dpkg, query_rpm

SCHEMA = Schema(
    [
        Option(
            "name",
            Line(pattern=r"[A-Za-z0-9_.+-]+", expected="a package name"),
            default=section_name,
            help="the installed package's name",
        ),
        Option(
            "manager",
            Choice("auto", "rpm", "dpkg"),
            default="auto",
            help="which package database to read; auto tries rpm, then dpkg on Debian layouts",
        ),
        Option(
            "dbpath",
            AbsolutePath(),
            default=None,
            help="the rpm database directory (below the root), e.g. /var/lib/rpm",
        ),
        Option(
            "prefix",
            AbsolutePath(),
            default=None,
            help="the package's install directory, when it cannot be told from its files",
        ),
        reload.restart_option(),
    ]
)


class Recipe(BaseRecipe):
    """Package facts; writes nothing but its version in the books."""

    schema = SCHEMA
    recipe_name = "package"
    exposed = ("version", "release", "prefix", "files")

    def build(self, spec: PartSpec, values: Values) -> None:
        package = self._query(values)
        prefix = (
            values.prefix
            or (package.prefixes[0] if package.prefixes else None)
            or common_prefix(package.files)
        )
        if prefix is None:
            raise ConfigError(
                self.name,
                "prefix",
                f"cannot tell where {values.name} is installed",
                "prefix = the package's install directory",
            )
        self.options["version"] = package.version
        self.options["release"] = package.release
        self.options["prefix"] = prefix
        self.options["files"] = "\n".join(package.files)
        self.package = package
        # the books keep the version this host was configured for: an upgrade (the RPM's
        # %post runs the host buildout) restarts what runs it
        spec.facts = {values.name: f"{package.version}-{package.release}"}
        spec.fact_reloads = list(values.restart)

    def _query(self, values: Values):
        root = self.settings.root
        tried = []
        if values.manager in ("auto", "rpm"):
            try:
                return query_rpm(values.name, root, values.dbpath)
            except NotInstalled as error:
                tried.append(
                    f"rpm database{' ' + values.dbpath if values.dbpath else ''}: "
                    + " ".join(error.args[0])
                )
            except FileNotFoundError:
                tried.append("rpm is not installed")
        if values.manager == "dpkg" or (values.manager == "auto" and self.layout.name == "debian"):
            try:
                return query_dpkg(values.name, root)
            except NotInstalled as error:
                tried.append("dpkg: " + " ".join(error.args[0]))
        raise ConfigError(
            self.name,
            "name",
            f"package {values.name} is not installed (" + "; ".join(tried) + ")",
            "an installed package",
        )
