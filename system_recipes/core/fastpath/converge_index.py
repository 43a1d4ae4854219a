"""The converge index: ``system-recipes converge`` (``system_recipes.commands.converge``) checks the fast
path's record without importing zc.buildout, through an *index* in the cache directory that the
last clean run through ``converge`` wrote: the sha256 of every configuration file buildout read
(with its extends), the command line (the Request), and where the record is. Holding the run's
lock, with no journal pending, it compares the record as the extension would.

Separate from :mod:`.fastpath` (the record, its comparison, what a run reads) because only the
``converge`` entry point and the clean run that leaves the index use it. Like fastpath, it
imports only the standard library (and fastpath).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from system_recipes.core.fastpath.record import (
    FORMAT,
    Record,
    record_path,
    sha256_of,
    write_private,
)

#: where ``converge`` keeps its index (``SYSTEM_RECIPES_CACHE_DIR`` overrides it)
CACHE_DIRECTORY = "/var/cache/system-recipes"
CACHE_VARIABLE = "SYSTEM_RECIPES_CACHE_DIR"


@dataclass(frozen=True)
class Request:
    """What ``converge`` was asked: the configuration file, the assignments, the verbosity."""

    config: str
    assignments: tuple[str, ...] = ()
    verbosity: int = 0

    def digest(self) -> str:
        text = json.dumps([self.config, list(self.assignments), self.verbosity])
        return hashlib.sha256(text.encode()).hexdigest()[:32]


#: set by ``converge`` before it runs buildout in the same process, so that a clean run writes
#: the index for exactly this request
REQUEST: list[Request] = []


def cache_directory() -> str:
    configured = os.environ.get(CACHE_VARIABLE)
    if configured:
        return configured
    if os.geteuid() == 0:
        return CACHE_DIRECTORY
    return os.path.join(os.path.expanduser("~"), ".cache", "system-recipes")


def index_path(request: Request) -> str:
    return os.path.join(cache_directory(), "converge", f"{request.digest()}.json")


def write_index(
    request: Request, configuration_files: Iterable[str], state_path: str, instance: str, key: str
) -> None:
    data = {
        "format": FORMAT,
        "request": [request.config, list(request.assignments), request.verbosity],
        "files": {path: sha256_of(path) for path in sorted(set(configuration_files))},
        "state": state_path,
        "instance": instance,
        "config_key": key,
    }
    write_private(index_path(request), (json.dumps(data, sort_keys=True) + "\n").encode())


def read_index(request: Request) -> dict | None:
    try:
        with open(index_path(request), "rb") as stream:
            data = json.loads(stream.read())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    if data.get("request") != [request.config, list(request.assignments), request.verbosity]:
        return None
    return data


def nothing_changed(request: Request) -> tuple[int | None, str]:
    """(parts, when) if the last clean run still holds; else (None, why not)."""
    index = read_index(request)
    if index is None:
        return None, "no record of a clean run through converge"
    for path, digest in index["files"].items():
        if sha256_of(path) != digest:
            return None, f"{path} changed"
    state, instance = index["state"], index["instance"]
    lock = _lock(os.path.join(state, "lock"))
    if lock is None:
        return None, "another run holds the lock"
    try:
        if os.path.lexists(os.path.join(state, "journal")):
            return None, "an interrupted run is to be recovered"
        record = Record.load(record_path(state, instance))
        if record is None:
            return None, "the last run was not clean"
        why = record.first_difference(index["config_key"])
        if why is not None:
            return None, why
        return record.parts, record.written
    finally:
        os.close(lock)


def _lock(path: str) -> int | None:
    """The run's own lock, exclusively, without waiting (a run in progress: buildout waits)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
