"""The run's journal: what each change replaced, so a failed or killed run can be undone.

Every entry is appended (and fsynced) *before* its change is made, so rolling back an entry
whose change never happened is harmless. An entry names the temporary file (or link) its write
goes through and the directories it creates, before they exist: a run killed in a write leaves
no ``.NAME.sr-tmpPID`` beside the real file once the next run has rolled back. The journal
lives in the state directory, never in an include directory that a daemon reads. A run
commits by writing the new manifest; the
journal records that manifest's hash first, so recovery can tell a committed run (delete the
journal) from an interrupted one (roll back).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import TextIO

from system_recipes.core.declare.specs import sha256
from system_recipes.core.disk import fsops


class Journal:
    def __init__(self, root: str, directory: str):
        self.root = root
        self.directory = directory
        self.log_path = os.path.join(directory, "log.jsonl")
        self._stream: TextIO | None = None
        self._count = 0
        #: directories whose times an entry recorded already (the first record is the one a
        #: rollback puts back), and directories known to exist (a write there makes none)
        self._timed: set[str] = set()
        self._present: set[str] = set()

    # -- writing ---------------------------------------------------------------------------
    def _open(self) -> TextIO:
        if self._stream is None:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._stream = open(self.log_path, "a", encoding="utf-8")
        return self._stream

    def _append(self, entry: dict) -> None:
        path = entry.get("path")
        if path and entry["op"] in ("file", "link", "mkdir"):
            # the times of the directory it changes and of a file it replaces: put back by a
            # rollback, which then leaves the tree as it found it, modification times included
            directory = os.path.dirname(path)
            if directory not in self._timed:
                self._timed.add(directory)
                entry["dir_times"] = {directory: fsops.times(self.root, directory)}
            if entry.get("backup") is not None:
                entry["times"] = fsops.times(self.root, path)
        stream = self._open()
        stream.write(json.dumps(entry, sort_keys=True) + "\n")
        stream.flush()
        os.fsync(stream.fileno())

    def _backup(self, data: bytes) -> str:
        self._open()
        self._count += 1
        name = f"{self._count:06d}.orig"
        fd = os.open(
            os.path.join(self.directory, name),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
            0o600,
        )
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        return name

    def before_file_change(self, path: str, previous: fsops.FileState | None) -> None:
        """Record what ``path`` holds now (file or nothing) before it is written or removed,
        and the temporary file a write of it goes through."""
        self._open()
        tmp = fsops.temporary_path(path)
        if previous is None:
            self._append({"op": "file", "path": path, "backup": None, "tmp": tmp})
        else:
            self._append(
                {
                    "op": "file",
                    "path": path,
                    "backup": self._backup(previous.content),
                    "mode": previous.mode,
                    "uid": previous.uid,
                    "gid": previous.gid,
                    "tmp": tmp,
                }
            )

    def before_link_change(self, path: str, previous: fsops.FileState | None) -> None:
        """Record what ``path`` is now (nothing, a symlink, or a regular file a forced link
        replaces) before a symlink is made or removed there."""
        entry: dict[str, object] = {
            "op": "link",
            "path": path,
            "target": None,
            "backup": None,
            "tmp": fsops.temporary_path(path),
        }
        if previous is not None and previous.kind == "symlink":
            entry["target"] = previous.target
        elif previous is not None and previous.kind == "file":
            entry.update(
                backup=self._backup(previous.content),
                mode=previous.mode,
                uid=previous.uid,
                gid=previous.gid,
            )
        self._append(entry)

    def before_metadata_change(self, path: str, previous: fsops.FileState, kind: str) -> None:
        self._append(
            {
                "op": "meta",
                "kind": kind,
                "path": path,
                "mode": previous.mode,
                "uid": previous.uid,
                "gid": previous.gid,
            }
        )

    def created_directories(self, paths: list[str]) -> None:
        for path in paths:
            self._append({"op": "mkdir", "path": path})

    def before_write(self, path: str) -> None:
        """The directories a write of ``path`` is about to create (rolled back after the file,
        being journaled before it)."""
        directory = os.path.dirname(path)
        if directory not in self._present:
            self.created_directories(fsops.missing_directories(self.root, path))
            self._present.add(directory)  # there once this write is made

    def directory_removed(self, path: str) -> None:
        """``path`` was removed (an empty directory a part left): a write there makes it again."""
        self._present = {d for d in self._present if d != path and not d.startswith(path + "/")}

    def before_accounts_change(self) -> None:
        from system_recipes.core.disk.accounts import ACCOUNT_FILES

        saved: dict[str, dict[str, object] | None] = {}
        for path in ACCOUNT_FILES:
            state = fsops.inspect(self.root, path)
            if state is not None and state.kind == "file":
                saved[path] = {
                    "backup": self._backup(state.content),
                    "mode": state.mode,
                    "uid": state.uid,
                    "gid": state.gid,
                    "times": fsops.times(self.root, path),
                }
            else:
                saved[path] = None
        directories = {os.path.dirname(path) for path in ACCOUNT_FILES}
        self._append(
            {
                "op": "accounts",
                "files": saved,
                "dir_times": {d: fsops.times(self.root, d) for d in sorted(directories)},
            }
        )

    def committing(self, manifest_data: bytes, path: str) -> None:
        """Before the manifest (host path ``path``) is written: the commit point."""
        self._append(
            {"op": "commit", "manifest": sha256(manifest_data), "tmp": fsops.temporary_path(path)}
        )

    @property
    def active(self) -> bool:
        return self._stream is not None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        self._timed.clear()
        self._present.clear()

    # -- reading and undoing ---------------------------------------------------------------
    def entries(self) -> list[dict]:
        try:
            with open(self.log_path, encoding="utf-8") as stream:
                lines = stream.read().splitlines()
        except FileNotFoundError:
            return []
        result = []
        for line in lines:
            try:
                result.append(json.loads(line))
            except ValueError:
                break  # a torn last line from a killed run: that change was never made
        return result

    def rollback(self) -> int:
        """Undo every recorded change, newest first; returns how many were undone (the
        temporary files of a killed run's writes, and of a killed rollback's, are not counted)."""
        self.close()
        entries = self.entries()
        for entry in reversed(entries):
            if entry.get("tmp"):
                fsops.remove_file(self.root, entry["tmp"])
            self._undo(entry)
        first: dict[str, list[int]] = {}  # each directory's times before the first change
        for entry in entries:
            for directory, times in (entry.get("dir_times") or {}).items():
                if times is not None:
                    first.setdefault(directory, times)
        for directory, times in first.items():
            fsops.set_times(self.root, directory, times)
        self.discard()
        return sum(1 for e in entries if e["op"] not in ("commit", "tmp"))

    def _restore(self, path: str, saved: dict) -> None:
        """Put back the file ``saved`` (an entry, or an account file's record) backed up."""
        with open(os.path.join(self.directory, saved["backup"]), "rb") as stream:
            data = stream.read()
        self._rollback_writes(path)
        fsops.write_file(self.root, path, data, saved["mode"], saved["uid"], saved["gid"])
        if saved.get("times"):
            fsops.set_times(self.root, path, saved["times"])

    def _rollback_writes(self, path: str) -> None:
        """A rollback's own write goes through a temporary file too (of this process): named
        first, so a rollback that is killed leaves it to the next one."""
        self._append({"op": "tmp", "tmp": fsops.temporary_path(path)})

    def _undo(self, entry: dict) -> None:
        op = entry["op"]
        path: str = entry.get("path", "")  # every entry but "accounts" (which names files)
        if op == "file":
            if entry["backup"] is None:
                fsops.remove_file(self.root, path)
            else:
                self._restore(path, entry)
        elif op == "meta":
            state = fsops.inspect(self.root, path, read=False)
            if state is not None and state.kind in ("file", "dir"):
                if state.kind == "dir":
                    fsops.make_directory(self.root, path, entry["mode"], entry["uid"], entry["gid"])
                else:
                    fsops.set_metadata(self.root, path, entry["mode"], entry["uid"], entry["gid"])
        elif op == "link":
            state = fsops.inspect(self.root, path, read=False)
            if entry["target"] is not None:
                self._rollback_writes(path)
                fsops.make_symlink(self.root, path, entry["target"], replace_file=True)
            elif state is not None and state.kind == "symlink":
                fsops.remove_file(self.root, path)  # ours (or nothing was there before)
            if entry["backup"] is not None:
                self._restore(path, entry)
        elif op == "mkdir":
            fsops.remove_empty_directory(self.root, path)
        elif op == "accounts":
            for account_file, saved in entry["files"].items():
                if saved is None:
                    fsops.remove_file(self.root, account_file)
                else:
                    self._restore(account_file, saved)

    def recover(self, manifest_data: bytes | None) -> tuple[str, int]:
        """After a killed run: ('committed'|'rolled back'|'clean', changes undone)."""
        if not os.path.isdir(self.directory):
            return "clean", 0
        entries = self.entries()
        if (
            entries
            and entries[-1]["op"] == "commit"
            and manifest_data is not None
            and entries[-1]["manifest"] == sha256(manifest_data)
        ):
            self.discard()
            return "committed", 0
        return "rolled back", self.rollback()
