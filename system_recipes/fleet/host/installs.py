"""The packages a host must have, ensured with its own package manager (dnf, yum or apt-get).

What is installed is read first, in one query of the manager's database, so a host that has
every package at its version runs no package manager at all: a no-op costs one query. That
query, which manager the host has and whether an installed version is the one wanted are asked
of :mod:`system_recipes.daemons.packages` (the one reader of rpm and dpkg); this module decides
what to install and installs it. A version is the package manager's own (``1.0`` or ``1.0-1``
for an RPM, the full Debian version for a deb); an installed ``1.0-1`` satisfies ``1.0``.
``None`` asks for the package at any version.

While the packages install, ``/run/system-recipes/defer-host-buildout`` exists (and
``SYSTEM_RECIPES_DEFER_BUILDOUT=1`` is in the environment): an RPM's ``%post`` that sees either
leaves the host buildout to ``fleet-host``, which runs it once, after every package.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from system_recipes.daemons import packages as facts

DEFER_FLAG = "/run/system-recipes/defer-host-buildout"


class PackageError(Exception):
    """One line: the package manager's complaint."""


@dataclass
class Packages:
    """``wanted``: name -> version (or None). ``manager``: the host's (found on the PATH)."""

    wanted: dict[str, str | None]
    manager: str | None = None
    installed: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.manager is None and self.wanted:
            self.manager = facts.manager()

    def read_installed(self) -> dict[str, str]:
        """name -> installed version, for the wanted packages that are installed."""
        if not self.wanted:
            return {}
        database = facts.DATABASES.get(str(self.manager), "rpm")
        self.installed = facts.installed_versions(self.wanted, database)
        return self.installed

    def pending(self) -> list[str]:
        """The packages to install or change, as the manager's arguments (``shop-1.0``,
        ``shop=1.0-1``, ``shop``)."""
        if not self.wanted:
            return []
        if self.manager is None:
            raise PackageError("no package manager (expected dnf, yum or apt-get on the PATH)")
        self.read_installed()
        result = []
        for name, version in sorted(self.wanted.items()):
            have = self.installed.get(name)
            if have is not None and (version is None or facts.satisfies(have, version)):
                continue
            if version is None:
                result.append(name)
            else:
                result.append(
                    f"{name}={version}" if self.manager == "apt-get" else f"{name}-{version}"
                )
        return result

    def command(self, specs: list[str], simulate: bool = False) -> list[str]:
        """The command that installs ``specs`` (``simulate``: apt-get's ``-s``, dnf's and
        yum's ``--assumeno``, which change nothing)."""
        if self.manager == "apt-get":
            return [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "--allow-downgrades",
                "-o",
                "DPkg::Lock::Timeout=600",
                *(["-s"] if simulate else []),
                *specs,
            ]
        return [str(self.manager), "install", "-y" if not simulate else "--assumeno", "-q", *specs]

    def ensure(self, simulate: bool = False) -> list[str]:
        """Install what is pending; returns it. Raises PackageError (one line) on failure."""
        specs = self.pending()
        if not specs:
            return []
        environment = dict(os.environ, SYSTEM_RECIPES_DEFER_BUILDOUT="1")
        if self.manager == "apt-get":
            environment["DEBIAN_FRONTEND"] = "noninteractive"
        os.makedirs(os.path.dirname(DEFER_FLAG), exist_ok=True)
        with open(DEFER_FLAG, "w") as stream:
            stream.write(f"{os.getpid()}\n")
        try:
            result = subprocess.run(
                self.command(specs, simulate), capture_output=True, text=True, env=environment
            )
        finally:
            os.unlink(DEFER_FLAG)
        if result.returncode:
            raise PackageError(
                f"{self.manager} failed (exit {result.returncode}): "
                f"{last_line(result.stderr or result.stdout)}"
            )
        return specs


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
