"""Facts about installed system packages: the rpm database, or dpkg's, and the package manager
a host installs with. Each fact is asked and read here, for the package recipe (one package, its
files) and for the fleet's host step (which of the packages it wants are installed, at what
version: one query for all of them).

This module imports only the standard library and :mod:`..core.fastpath` (so the fleet's step
reads it without importing the daemon modules' validators, or zc.buildout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from system_recipes.core.fastpath import record as fastpath

#: the package managers a host installs with, in the order they are looked for on the PATH, and
#: the database each keeps what is installed in
MANAGERS = ("dnf", "yum", "apt-get")
DATABASES = {"dnf": "rpm", "yum": "rpm", "apt-get": "dpkg"}


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    release: str
    files: tuple[str, ...]
    manager: str
    prefixes: tuple[str, ...] = ()


class NotInstalled(Exception):
    pass


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))


def query_rpm(name: str, root: str = "/", dbpath: str | None = None) -> Package:
    base = ["rpm"]
    # the facts come from rpm's database: a change there is a change for the fast path
    if dbpath:
        fastpath.note_database(os.path.join(root, dbpath.lstrip("/")))
    else:
        fastpath.note_database(os.path.join(root, "var/lib/rpm"))
        if root == "/":
            fastpath.note_database(os.path.expanduser("~/.rpmdb"))  # Debian's rpm default
    if root != "/":
        base += ["--root", root]
    if dbpath:
        base += ["--dbpath", dbpath]
    info = _run(base + ["-q", "--queryformat", "%{VERSION}\\t%{RELEASE}\\t[%{PREFIXES} ]\\n", name])
    if info.returncode:
        raise NotInstalled(
            (info.stdout + info.stderr).strip().splitlines()[-1:] or ["not installed"]
        )
    version, release, prefixes = info.stdout.splitlines()[-1].split("\t")
    files = _run(base + ["-ql", name]).stdout.split()
    return Package(
        name,
        version,
        release,
        tuple(f for f in files if f.startswith("/")),
        "rpm",
        tuple(p for p in prefixes.split() if p != "(none)"),
    )


def query_dpkg(name: str, root: str = "/") -> Package:
    base = ["dpkg-query"]
    fastpath.note_path(os.path.join(root, "var/lib/dpkg/status"))
    if root != "/":
        base += ["--admindir", os.path.join(root, "var/lib/dpkg")]
    info = _run(base + ["-W", "-f", "${db:Status-Abbrev}\\t${Version}\\n", name])
    if info.returncode or not info.stdout.startswith("ii"):
        raise NotInstalled(["not installed in the dpkg database"])
    full = info.stdout.split("\t")[1].strip()
    version, _, release = full.rpartition("-") if "-" in full else (full, "", "")
    files = _run(base + ["-L", name]).stdout.split("\n")
    return Package(name, version, release, tuple(f for f in files if f.startswith("/")), "dpkg")


def manager() -> str | None:
    """The host's package manager: the first of :data:`MANAGERS` on the PATH (None: none is)."""
    for name in MANAGERS:
        if shutil.which(name):
            return name
    return None


def installed_versions(names: Iterable[str], database: str) -> dict[str, str]:
    """name -> installed version, for those of ``names`` that are installed, in one query of
    ``database`` (``rpm``: ``[EPOCH:]VERSION-RELEASE``; ``dpkg``: the full Debian version)."""
    names = sorted(names)
    if not names:
        return {}
    if database == "dpkg":
        result = _run(
            ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *names]
        )
        rows = [line.split("\t") for line in result.stdout.splitlines()]
        return {r[0]: r[1] for r in rows if len(r) == 3 and r[2].startswith("ii")}
    result = _run(
        ["rpm", "-q", "--qf", "%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n", *names]
    )
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    return {r[0]: r[1] for r in rows if len(r) == 2}


def satisfies(installed: str, wanted: str) -> bool:
    """Whether an installed version is a wanted one: ``1.0-1`` and ``2:1.0-1`` satisfy
    ``1.0``; ``1.0-1`` satisfies ``1.0-1``."""
    for have in (installed, installed.split(":", 1)[-1]):
        if have == wanted or have.startswith(wanted + "-"):
            return True
    return False


def common_prefix(files: tuple[str, ...]) -> str | None:
    """The install directory of a package: the common directory of its non-system files."""
    ignored = ("/etc/", "/usr/share/doc/", "/usr/share/man/", "/usr/share/licenses/", "/var/")
    own = [f for f in files if not f.startswith(ignored)]
    if not own:
        return None
    prefix = os.path.commonpath(own)
    if prefix in own and len(own) > 1 and not any(f.startswith(prefix + "/") for f in own):
        prefix = os.path.dirname(prefix)
    return prefix if prefix not in ("/", "/usr", "/usr/bin", "/opt") else None
