"""The no-op fast path: an exact proof that nothing a run depends on changed since the last clean
run, checked before any meta section expands or any part is constructed.

A clean, full run (every configured part ours and staged, no drift, no warning, no reload
problem) leaves a *record* in its instance's state directory: a key over the resolved
configuration, a stamp of the code that ran (system-recipes' own files and zc.buildout's), and
the lstat of every path the run depends on: every managed file, link and directory (the
manifest), every file it read and directory it listed (seen through an audit hook: templates,
account files, os-release, ...), the package databases its package facts come from, the
manifest and buildout's installed.cfg. The next run compares; only when everything is equal
does it say "nothing to do" and stop. A run that is not clean removes the record first, so a
record exists only while the last run was clean.

``system-recipes converge`` (``system_recipes.commands.converge``) makes the same check without importing
zc.buildout, through the index of :mod:`.converge_index`. This module holds the record, its
comparison and what a run reads; it imports only the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import system_recipes

RECORD_NAME = "fastpath.json"
FORMAT = 1
PACKAGE_DIRECTORY = os.path.dirname(os.path.abspath(system_recipes.__file__))


#: what a run reads that says nothing about the host: the interpreter's own libraries (not all
#: of its prefix: /usr holds an application's templates too), what the stamp of the code
#: covers, and the kernel's files
def _ignored_prefixes() -> tuple[str, ...]:
    paths = {PACKAGE_DIRECTORY, "/proc", "/sys", "/dev"}
    for variables in (None, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        found = sysconfig.get_paths(vars=variables) if variables else sysconfig.get_paths()
        paths |= {found[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(sorted(os.path.join(os.path.realpath(p), "") for p in paths))


IGNORED_PREFIXES = _ignored_prefixes()

Stat = list[int] | None


def full_stat(path: str) -> Stat:
    """inode, size, mtime, ctime, mode, owner, group: a hand edit that keeps size and mtime
    still changes ctime. None for a missing path."""
    try:
        s = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_mode, s.st_uid, s.st_gid]


def directory_stat(path: str) -> Stat:
    """A managed directory's own attributes: what is in it (a log file, a pid file) is not
    managed, and its mtime and ctime change with every entry."""
    try:
        s = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISDIR(s.st_mode):
        return [s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_mode, s.st_uid, s.st_gid]
    return [s.st_ino, -1, -1, -1, s.st_mode, s.st_uid, s.st_gid]


STAT_KINDS = {"full": full_stat, "directory": directory_stat}


def sha256_of(path: str) -> str | None:
    try:
        with open(path, "rb") as stream:
            return hashlib.sha256(stream.read()).hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _walk_files(top: str, recursive: bool) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name == "__pycache__" or entry.name.endswith(".pyc"):
            continue
        if entry.is_dir(follow_symlinks=False):
            if recursive and entry.name != "tests":
                yield from _walk_files(entry.path, recursive)
        else:
            yield entry.path


def code_stamp() -> str:
    """system-recipes' files (code, shipped templates and profiles) and zc.buildout's, by
    size and mtime: an upgrade of either is a change."""
    digest = hashlib.sha256()
    tops = [(PACKAGE_DIRECTORY, True)]
    buildout = _zc_buildout_directory()
    if buildout:
        tops.append((buildout, False))
    for top, recursive in tops:
        for path in _walk_files(top, recursive):
            s = os.lstat(path)
            digest.update(f"{path}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _zc_buildout_directory() -> str | None:
    """Where zc.buildout is, without importing it (importing it costs 0.2-0.4 s)."""
    for entry in sys.path:
        candidate = os.path.join(entry or ".", "zc", "buildout")
        if os.path.isfile(os.path.join(candidate, "buildout.py")):
            return candidate
    return None


def configuration_key(raw: dict) -> str:
    """A key over the resolved configuration (buildout's ``_raw``: every section and option
    after extends and command-line assignments, ``verbosity`` included)."""
    text = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- what a run reads ----------------------------------------------------------------------
_READS: dict[str, str] = {}  # path -> stat kind
_LISTENING = [False]


def _audit(event: str, args: tuple) -> None:
    """Relative paths are left out: the run's own relative opens are fsops' walks below a
    directory descriptor (of managed paths, watched anyway), and importlib lists the current
    directory for metadata."""
    if not _LISTENING[0]:
        return
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int) or path is None or not os.fsdecode(path).startswith("/"):
            return
        if mode is not None and any(c in mode for c in "wax+"):
            return
        if mode is None and flags is not None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            return
        note_path(os.fsdecode(path))
    elif event in ("os.listdir", "os.scandir"):
        path = args[0] if args else None
        if isinstance(path, (str, bytes)) and os.fsdecode(path).startswith("/"):
            note_path(os.fsdecode(path))


def _noting(original: Callable[..., Any]) -> Callable[..., Any]:
    """``os.stat``/``lstat``/``access`` that note the absolute paths they are asked about:
    a run decides by existence too (``os.path.isdir`` of systemd's directory chose a runscript's
    kind, jinja's loader looks for a template with ``stat``), and no audit hook sees a stat.
    Calls relative to a directory descriptor (fsops' walks of managed paths) are left out."""

    def noting(path: object, *args: Any, **kwargs: Any) -> Any:
        if _LISTENING[0] and not kwargs.get("dir_fd") and isinstance(path, (str, bytes)):
            text = os.fsdecode(path)
            if text.startswith("/"):
                note_path(text)
        return original(path, *args, **kwargs)

    noting.__wrapped__ = original  # type: ignore[attr-defined]
    return noting


def listen() -> None:
    """Start noting what this run reads and looks at (hooked once per process: an audit hook
    cannot be removed; the stat wrappers note nothing while no run listens)."""
    if not getattr(sys, "_system_recipes_audit", False):
        sys.addaudithook(_audit)
        for name in ("stat", "lstat", "access"):
            setattr(os, name, _noting(getattr(os, name)))
        sys._system_recipes_audit = True  # type: ignore[attr-defined]
    _READS.clear()
    _LISTENING[0] = True


def stop_listening() -> None:
    _LISTENING[0] = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """What a validator looks at (its tool on PATH, cron's spool it isolates itself from) is
    left out: a no-op validates nothing, so none of it can change a no-op's outcome."""
    listening = _LISTENING[0]
    _LISTENING[0] = False
    try:
        yield
    finally:
        _LISTENING[0] = listening


def note_path(path: str) -> None:
    """A path the run depends on (a read file, a listed directory, a package database that a
    subprocess reads): its full lstat goes into the record."""
    path = canonical(path)
    if not (path + "/").startswith(IGNORED_PREFIXES):
        _READS.setdefault(path, "full")


def canonical(path: str) -> str:
    """Absolute and normalized, with one leading slash: POSIX keeps a leading ``//`` (a root of
    ``/`` before ``/var/lib/...`` makes one), which would hide a path from the prefixes."""
    path = os.path.abspath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def note_database(directory: str) -> None:
    """A package database a subprocess reads (rpm's, dpkg's): the directory and every file in
    it (rpm's sqlite file changes in place; a new file changes the directory)."""
    note_path(directory)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        note_path(os.path.join(directory, name))


# -- the record ------------------------------------------------------------------------------
@dataclass
class Record:
    config_key: str
    code: str
    #: path -> [kind, stat]
    watched: dict[str, list] = field(default_factory=dict)
    parts: int = 0
    written: str = ""

    def dumps(self) -> bytes:
        data = {
            "format": FORMAT,
            "config_key": self.config_key,
            "code": self.code,
            "parts": self.parts,
            "written": self.written,
            "watched": self.watched,
        }
        return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode()

    @classmethod
    def load(cls, path: str) -> Record | None:
        try:
            with open(path, "rb") as stream:
                data = json.loads(stream.read())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        return cls(
            data["config_key"], data["code"], data["watched"], data["parts"], data["written"]
        )

    def first_difference(self, config_key: str) -> str | None:
        """Why the fast path may not be taken (None: it may)."""
        if config_key != self.config_key:
            return "the configuration changed"
        if code_stamp() != self.code:
            return "system-recipes or zc.buildout changed"
        for path, (kind, seen) in self.watched.items():
            if STAT_KINDS[kind](path) != seen:
                return f"{path} changed"
        return None


def record_path(state_path: str, instance: str) -> str:
    return os.path.join(state_path, instance, RECORD_NAME)


def make_record(
    config_key: str,
    managed: Iterable[tuple[str, str]],
    extra: Iterable[str],
    parts: int,
    state_path: str,
) -> Record:
    """``managed``: (path, stat kind) of what the manifest holds; ``extra``: the state files
    the next run depends on (the rest of the state directory -- journal, lock, backups -- is
    the run's own bookkeeping)."""
    watched: dict[str, list] = {}
    for path, kind in managed:
        path = canonical(path)
        watched[path] = [kind, STAT_KINDS[kind](path)]
    state = os.path.join(canonical(state_path), "")
    reads = [path for path in _READS if not (path + "/").startswith(state)]
    for path in [*reads, *map(canonical, extra)]:
        if path not in watched:
            watched[path] = ["full", full_stat(path)]
    return Record(
        config_key,
        code_stamp(),
        watched,
        parts,
        time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def write_private(path: str, data: bytes) -> None:
    """Atomically, mode 0600, never through a planted symlink (the state directory is root's;
    the cache directory may not be)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


def forget(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
