"""Facts about users and groups below an install root, and creating system accounts there."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass

ACCOUNT_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str


_TABLES: dict[str, tuple[tuple, list[list[str]], dict[tuple[str, int], list[str]]]] = {}


def _table(root: str, host_path: str) -> tuple[list[list[str]], dict[tuple[str, int], list[str]]]:
    """The fields of each line of an account file below ``root``, and the first line of each
    name with at least N fields by (name, N) (a host with an account per service looked each
    name up line by line). Re-read only when the file changed (every part asks about its
    owners, and useradd may add lines during a run)."""
    path = os.path.join(root, host_path.lstrip("/"))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [], {}
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _TABLES.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    try:
        with open(path, encoding="utf-8") as stream:
            fields = [line.rstrip("\n").split(":") for line in stream if ":" in line]
    except FileNotFoundError:
        return [], {}
    index: dict[tuple[str, int], list[str]] = {}
    for row in fields:
        for width in (3, 6):  # a group line has its gid third, a passwd line its home sixth
            if len(row) >= width:
                index.setdefault((row[0], width), row)
    _TABLES[path] = (stamp, fields, index)
    return fields, index


def find_user(root: str, name: str) -> User | None:
    if root == "/":
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return User(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    fields = _table(root, "/etc/passwd")[1].get((name, 6))
    if fields is None:
        return None
    return User(name, int(fields[2]), int(fields[3]), fields[5])


def find_group(root: str, name: str) -> int | None:
    if root == "/":
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None
    fields = _table(root, "/etc/group")[1].get((name, 3))
    return None if fields is None else int(fields[2])


def _prefix(root: str) -> list[str]:
    # --prefix edits ROOT/etc/* without chroot(), so no binaries are needed below the root
    return [] if root == "/" else ["--prefix", root]


def create_group(root: str, name: str) -> None:
    _run(["groupadd", "--system", *_prefix(root), name])


def create_user(root: str, name: str, group: str, home: str, shell: str) -> None:
    _run(
        [
            "useradd",
            "--system",
            "--gid",
            group,
            "--home-dir",
            home,
            "--no-create-home",
            "--shell",
            shell,
            *_prefix(root),
            name,
        ]
    )


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise OSError(f"{' '.join(command)}: {message[-1] if message else 'failed'}")
