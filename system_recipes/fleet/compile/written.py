"""What a controller command wrote into a directory of the operator's: ``fleet compile -o DIR``
and ``fleet export ansible DIR`` keep a manifest there (as the host side keeps one of /etc,
core/disk/manifest.py: path and sha256 of each file written), and replace or remove nothing else.

For each file the command would write:

- absent, or already holding the new text: written (or left) and recorded;
- recorded, and as recorded (untouched since): replaced;
- recorded but changed by hand since, or not recorded (the operator's own file): refused
  without ``--force``.

A file recorded and no longer written (a host gone from the model) is removed when it is as
recorded; changed by hand, it is refused without ``--force``. Everything is checked before
anything is written: a refusal is one line naming the file, and nothing is written.

A directory written before there were manifests has none: a file holding what the command
would write is adopted (recorded); any other file is refused as not the command's, so the
first run of this version over an older output is best made with an unchanged model (it then
adopts every file); ``legacy`` names the files an older version would have removed (the
compiled file of a host gone from the model), refused the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from system_recipes.fleet.files import write_atomic
from system_recipes.fleet.model.tables import ModelError

#: the manifest of each command, in the directory it writes
MANIFESTS = {"fleet compile": ".fleet-compile.json", "fleet export": ".fleet-export.json"}


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Writes:
    """What a command will do in ``directory``: checked, not yet done (:meth:`apply`)."""

    directory: str
    command: str
    books: dict[str, str]  # path (relative) -> digest, as the directory's manifest will say
    recorded: bytes | None  # the manifest as it is (None: none yet)
    write: dict[str, str] = field(default_factory=dict)  # path -> text to write
    actions: dict[str, str] = field(default_factory=dict)  # path -> wrote|updated|unchanged
    remove: list[str] = field(default_factory=list)

    @property
    def manifest(self) -> str:
        return os.path.join(self.directory, MANIFESTS[self.command])

    def apply(self) -> None:
        """Write and remove, then the manifest (only when it changed)."""
        for path, text in self.write.items():
            target = os.path.join(self.directory, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_atomic(target, text)
        for path in self.remove:
            os.unlink(os.path.join(self.directory, path))
            prune(self.directory, os.path.dirname(path))
        text = manifest_text(self.command, self.books)
        if self.recorded != text.encode("utf-8"):
            os.makedirs(self.directory, exist_ok=True)
            write_atomic(self.manifest, text)


def check_writes(
    directory: str,
    command: str,
    files: dict[str, str],
    force: bool = False,
    legacy: Iterable[str] = (),
) -> Writes:
    """What writing ``files`` (path relative to ``directory`` -> text) into ``directory``
    does, checked: ModelError (one line, the file as its source) when a file is not the
    command's to replace or remove and ``force`` is not given, or cannot be read."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        refuse(directory, "not a directory (expected a directory to write into)")
    manifest = os.path.join(directory, MANIFESTS[command])
    recorded = read_bytes(manifest, command)
    books = {} if recorded is None else parse_manifest(recorded, manifest, command, force)
    writes = Writes(directory, command, {}, recorded)
    refusals: list[tuple[str, str]] = []
    for path, text in files.items():
        target = os.path.join(directory, path)
        current = read_bytes(target, command)
        new = text.encode("utf-8")
        writes.books[path] = digest(new)
        if current == new:
            writes.actions[path] = "unchanged"
            continue
        writes.write[path] = text
        writes.actions[path] = "wrote" if current is None else "updated"
        if current is None or force or books.get(path) == digest(current):
            continue
        refusals.append(refusal(target, command, path in books, recorded is not None, False))
    gone = [path for path in books if path not in files]
    gone += [path for path in legacy if recorded is None and path not in files]
    for path in gone:
        target = os.path.join(directory, path)
        current = read_bytes(target, command)
        if current is None:
            continue
        if force or books.get(path) == digest(current):
            writes.remove.append(path)
            continue
        refusals.append(refusal(target, command, path in books, recorded is not None, True))
    if refusals:
        target, problem = refusals[0]
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        refuse(target, problem + more)
    return writes


def refusal(
    target: str, command: str, recorded: bool, manifest: bool, removing: bool
) -> tuple[str, str]:
    """``target``, and why it is not replaced (``removing``: removed) and what does it."""
    force = f"--force {'removes' if removing else 'replaces'} it"
    if recorded:
        return target, f"changed by hand since {command} wrote it (expected it as written: {force})"
    since = "" if manifest else f", or before it kept {MANIFESTS[command]}"
    return target, f"not written by {command}{since} (expected a file it wrote: {force})"


def refuse(source: str, problem: str) -> None:
    """``SOURCE: PROBLEM``: the file first (never clipped), then what is wrong with it."""
    raise ModelError(None, None, problem, source=source)


def read_bytes(path: str, command: str) -> bytes | None:
    """``path``'s content, None when there is none; a directory or an unreadable file where a
    file is expected is one line."""
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        refuse(path, f"a directory (expected a file of {command}, or nothing, there)")
    except OSError as error:
        refuse(path, f"{error.strerror or error} (expected a file {command} can read)")
    return None  # not reached


def parse_manifest(data: bytes, path: str, command: str, force: bool) -> dict[str, str]:
    """The books of a manifest; a damaged one is one line (``force``: treated as none)."""
    try:
        books = json.loads(data.decode("utf-8"))["files"]
        if isinstance(books, dict) and all(isinstance(v, str) for v in books.values()):
            return books
    except (ValueError, KeyError, TypeError):
        pass
    if force:
        return {}
    refuse(path, f"not a manifest of {command} (expected its JSON, or --force)")
    return {}  # not reached


def manifest_text(command: str, books: dict[str, str]) -> str:
    return (
        json.dumps(
            {
                "about": f"the files `system-recipes {command}` wrote here, with their "
                "sha256: it replaces or removes no other file, and none changed since, "
                "without --force",
                "files": books,
                "version": 1,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


def prune(directory: str, relative: str) -> None:
    """Remove the empty directories from ``relative`` up to (not including) ``directory``."""
    while relative:
        try:
            os.rmdir(os.path.join(directory, relative))
        except OSError:
            return
        relative = os.path.dirname(relative)
