"""Facts about installed system packages: the rpm database, or dpkg's."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from ..core import fastpath


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
