"""Recipe cases as data: ``tests/recipes/RECIPE/CASE.cfg`` (the format: tests/recipes/README.md).

A case is buildout sections (the input), then what planning them must give: the files and links
the run would write (exact content), the directories (mode and owner), or the one error line.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from dataclasses import dataclass, field

from support.host import link_nagios_plugins, make_scratch_root
from support.paths import BASE_CFG, REPO

CASES = os.path.join(REPO, "tests", "recipes")
MARKER = re.compile(r"^==> (.+) <==$")
ATTRIBUTES = re.compile(
    r"^(?P<path>/\S*?)(?: (?P<mode>[0-7]{4}) (?P<owner>[^:\s]+):(?P<group>\S+))?$"
)
SECTION = re.compile(r"^\[([^\]]+)\]\s*$")
MARKS = re.compile(r"^# marks: ([\w ]+?)(?: \(.*\))?$")  # "# marks: sandbox (why)"
# programs the cases' commands may name: present below every case root
PROGRAMS = ("/usr/bin/sleep", "/usr/bin/true", "/bin/true", "/usr/bin/python3")


@dataclass
class Expected:
    path: str
    content: str | None = None  # a file
    target: str | None = None  # a symlink
    directory: bool = False
    mode: int | None = None
    owner: str | None = None
    group: str | None = None


@dataclass
class Case:
    name: str  # recipe/case
    source: str  # the file
    text: str  # the buildout sections
    parts: list[str]
    error: str | None = None
    expected: list[Expected] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)  # pytest markers: sandbox, daemon


def discover() -> list[str]:
    return sorted(glob.glob(os.path.join(CASES, "*", "*.cfg")))


def parse(path: str) -> Case:
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().splitlines(keepends=True)
    name = os.path.relpath(path, CASES)[: -len(".cfg")]
    starts = [i for i, line in enumerate(lines) if MARKER.match(line.rstrip("\n"))]
    if not starts:
        raise ValueError(f"{path}: no ==> ... <== block (expected files or an error)")
    text = "".join(lines[: starts[0]])
    parts = []
    current = None
    for line in text.splitlines():
        match = SECTION.match(line)
        if match:
            current = match.group(1)
        elif current and re.match(r"^recipe\s*=", line) and current not in parts:
            parts.append(current)
    case = Case(name, path, text, parts)
    for line in text.splitlines():
        match = MARKS.match(line)
        if match:
            case.marks += match.group(1).split()
    for index, start in enumerate(starts):
        what = MARKER.match(lines[start].rstrip("\n")).group(1)
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        body = "".join(lines[start + 1 : end])
        if what == "error":
            if case.expected or case.error is not None or body.count("\n") != 1:
                raise ValueError(f"{path}: ==> error <== stands alone, with one line")
            case.error = body.rstrip("\n")
            continue
        if case.error is not None:
            raise ValueError(f"{path}: ==> error <== stands alone")
        link_path, arrow, target = what.partition(" -> ")
        if arrow:
            case.expected.append(Expected(link_path, target=target))
            continue
        match = ATTRIBUTES.match(what)
        if not match:
            raise ValueError(
                f"{path}: {what!r}: expected PATH, PATH/, PATH MODE OWNER:GROUP, "
                "PATH -> TARGET or error"
            )
        mode = int(match.group("mode"), 8) if match.group("mode") else None
        entry = Expected(
            match.group("path").rstrip("/") or "/",
            mode=mode,
            owner=match.group("owner"),
            group=match.group("group"),
        )
        if match.group("path").endswith("/"):
            if body:
                raise ValueError(f"{path}: {what}: a directory has no content")
            entry.directory = True
        else:
            entry.content = body
        case.expected.append(entry)
    return case


def case_root(path: str) -> str:
    """A scratch root with the machine's accounts, its Nagios plugins and a few programs."""
    root = make_scratch_root(path)
    link_nagios_plugins(root)
    for program in PROGRAMS:
        below = os.path.join(root, program.lstrip("/"))
        if os.path.exists(program) and not os.path.lexists(below):
            os.makedirs(os.path.dirname(below), exist_ok=True)
            shutil.copy2(program, below)
    # the package recipe reads dpkg's database below the root: this machine's, read only
    dpkg = os.path.join(root, "var/lib/dpkg")
    if os.path.isdir("/var/lib/dpkg") and not os.path.lexists(dpkg):
        os.makedirs(os.path.dirname(dpkg), exist_ok=True)
        os.symlink("/var/lib/dpkg", dpkg)
    # the daemons' own files the recipes write beside: haproxy's main file, PostgreSQL's
    # cluster configuration (this machine's packages), copied so a case reads them below the root
    for top in ("/etc/haproxy", "/etc/postgresql", "/etc/nagios/nrpe.cfg"):
        below = os.path.join(root, top.lstrip("/"))
        if os.path.isdir(top) and not os.path.lexists(below):
            shutil.copytree(top, below, symlinks=True)
        elif os.path.isfile(top) and not os.path.lexists(below):
            os.makedirs(os.path.dirname(below), exist_ok=True)
            shutil.copy2(top, below)
    # kind = auto of runscript picks systemd when the root has it, as this machine does
    systemd = "/usr/lib/systemd/systemd"
    if os.path.exists(systemd):
        os.makedirs(os.path.join(root, "usr/lib/systemd"), exist_ok=True)
        os.symlink(systemd, os.path.join(root, systemd.lstrip("/")))
    return root


def host_config(case: Case, root: str, directory: str) -> str:
    """The case's sections in a host configuration extending base.cfg, below ``root``."""
    settings = os.path.join(directory, "root.cfg")
    with open(settings, "w", encoding="utf-8") as stream:
        stream.write(f"[system-recipes]\nroot = {root}\n")
    config = os.path.join(directory, "host.cfg")
    with open(config, "w", encoding="utf-8") as stream:
        stream.write(
            f"[buildout]\nextends = {BASE_CFG} {settings}\nparts = {' '.join(case.parts)}\n"
            + case.text
        )
    return config
