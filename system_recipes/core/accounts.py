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


def _read_table(root: str, host_path: str) -> list[list[str]]:
    try:
        with open(os.path.join(root, host_path.lstrip("/")), encoding="utf-8") as stream:
            return [line.rstrip("\n").split(":") for line in stream if ":" in line]
    except FileNotFoundError:
        return []


def find_user(root: str, name: str) -> User | None:
    if root == "/":
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return User(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    for fields in _read_table(root, "/etc/passwd"):
        if fields[0] == name and len(fields) >= 6:
            return User(name, int(fields[2]), int(fields[3]), fields[5])
    return None


def find_group(root: str, name: str) -> int | None:
    if root == "/":
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None
    for fields in _read_table(root, "/etc/group"):
        if fields[0] == name and len(fields) >= 3:
            return int(fields[2])
    return None


def _prefix(root: str) -> list[str]:
    # --prefix edits ROOT/etc/* without chroot(), so no binaries are needed below the root
    return [] if root == "/" else ["--prefix", root]


def create_group(root: str, name: str) -> None:
    _run(["groupadd", "--system", *_prefix(root), name])


def create_user(root: str, name: str, group: str, home: str, shell: str) -> None:
    _run(["useradd", "--system", "--gid", group, "--home-dir", home, "--no-create-home",
          "--shell", shell, *_prefix(root), name])


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise OSError(f"{' '.join(command)}: {message[-1] if message else 'failed'}")
