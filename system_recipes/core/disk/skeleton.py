"""What a run makes before it applies anything, taken back when the run fails.

A run creates the state directory (and its parents on a scratch root), its lock file, and
buildout's own ``bin``, ``parts`` and ``develop-eggs`` directories before its plan is
validated. A run that fails (nothing applied, or everything rolled back) removes them again and
gives the directories they were made in their modification times back: the tree is as the run
found it, byte for byte. What a run applies is journaled (core.journal); this is the rest.
"""

from __future__ import annotations

import os


class Skeleton:
    def __init__(self) -> None:
        #: paths this run created, in the order it created them
        self.made: list[str] = []
        #: directory -> (atime, mtime) in ns before this run changed it
        self.times: dict[str, tuple[int, int]] = {}

    def keep_times(self, directory: str) -> None:
        """Remember ``directory``'s times now (the first time only), to put back on failure."""
        directory = os.path.normpath(directory)
        if directory not in self.times:
            try:
                st = os.stat(directory, follow_symlinks=False)
            except OSError:
                return
            self.times[directory] = (st.st_atime_ns, st.st_mtime_ns)

    def makedirs(self, path: str, mode: int = 0o700) -> None:
        """``os.makedirs(path, mode, exist_ok=True)``, noting each directory it creates (as
        there, ``mode`` is the last one's; the parents get 0o777, less the umask)."""
        path = os.path.normpath(path)
        missing = []
        while not os.path.lexists(path):
            missing.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        self.keep_times(path)
        for directory in reversed(missing):
            try:
                os.mkdir(directory, mode if directory == missing[0] else 0o777)
            except FileExistsError:
                continue  # made in the meantime by someone else: not ours to remove
            self.made.append(directory)

    def note(self, path: str) -> None:
        """``path`` (a file or a directory) was just created by this run."""
        self.keep_times(os.path.dirname(os.path.normpath(path)))
        self.made.append(os.path.normpath(path))

    def undo(self) -> None:
        """Remove what was made, newest first (a directory only when empty: anything another
        process put there stays), then give every directory noted its times back."""
        for path in reversed(self.made):
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                continue
        for directory, times in self.times.items():
            try:
                os.utime(directory, ns=times, follow_symlinks=False)
            except OSError:
                continue
        self.forget()

    def forget(self) -> None:
        """The run committed: what it made stays."""
        self.made.clear()
        self.times.clear()
