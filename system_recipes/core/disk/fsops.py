"""The one way system-recipes touches files: below an install root, never through a symlink.

Every path is walked from the root one component at a time with ``O_NOFOLLOW``, so a symlink
planted anywhere on the way (``/etc/cron.d -> /tmp/x`` or the file itself) is refused rather
than followed. Writes are atomic: a temporary file beside the target, owner and mode set, fsync,
rename. The temporary name starts with a dot and has no ``.conf``/``.cfg`` suffix, so the
daemons that read every file of an include directory never load it.
"""

from __future__ import annotations

import errno
import os
import stat as stat_module
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, overload

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: called with the host path of a written temporary file before it is renamed into place (the
#: crash tests' fault injection, set by ``apply``); None otherwise
before_rename: Callable[[str], None] | None = None


class UnsafePath(OSError):
    """A path that cannot be written safely: a symlink or a non-directory on the way."""


@dataclass(frozen=True)
class FileState:
    """What is on disk at a path (without following a symlink there)."""

    kind: str  # "file", "dir", "symlink", "other"
    mode: int
    uid: int
    gid: int
    data: bytes | None = None
    target: str | None = None  # what a symlink points to

    @property
    def content(self) -> bytes:
        """``data`` of a regular file inspected with ``read=True`` (the only kind that has it)."""
        if self.data is None:
            raise ValueError(f"no content was read for this {self.kind}")
        return self.data


def _components(host_path: str) -> list[str]:
    parts = [p for p in host_path.split("/") if p and p != "."]
    if ".." in parts:
        raise UnsafePath(errno.EINVAL, f"{host_path}: '..' is not allowed")
    return parts


@overload
def _open_dir(
    root: str, parts: list[str], create: Literal[True], created: list[str] | None = None
) -> int: ...
@overload
def _open_dir(
    root: str, parts: list[str], create: bool = False, created: list[str] | None = None
) -> int | None: ...
def _open_dir(
    root: str, parts: list[str], create: bool = False, created: list[str] | None = None
) -> int | None:
    """Open the directory root/parts... without following symlinks; None if it is missing."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = ""
    try:
        for part in parts:
            walked += "/" + part
            try:
                next_fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                os.mkdir(part, 0o755, dir_fd=fd)
                if created is not None:
                    created.append(walked)
                next_fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    kind = _describe(fd, part)
                    raise UnsafePath(
                        error.errno,
                        f"{walked} is {kind}; refusing to follow it (use the real path)",
                    ) from None
                raise
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _describe(dir_fd: int, name: str) -> str:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return "not a directory"
    if stat_module.S_ISLNK(st.st_mode):
        return f"a symlink to {os.readlink(name, dir_fd=dir_fd)}"
    return "not a directory"


def split(host_path: str) -> tuple[list[str], str]:
    parts = _components(host_path)
    if not parts:
        raise UnsafePath(errno.EINVAL, f"{host_path!r} names the root itself")
    return parts[:-1], parts[-1]


def _temporary_name(name: str) -> str:
    return f".{name}.sr-tmp{os.getpid()}"


def temporary_path(host_path: str) -> str:
    """The host path of the temporary file (or link) this process writes ``host_path`` through:
    the journal names it before it exists, so recovery after a kill removes it."""
    parents, name = split(host_path)
    return "/" + "/".join([*parents, _temporary_name(name)])


def missing_directories(root: str, host_path: str) -> list[str]:
    """The parent directories of ``host_path`` that do not exist yet, outermost first (what a
    write of it would create); [] also when the way is unsafe (the write itself refuses it)."""
    parents, _ = split(host_path)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(parents):
            try:
                next_fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return ["/" + "/".join(parents[: end + 1]) for end in range(index, len(parents))]
            except OSError:
                return []
            os.close(fd)
            fd = next_fd
        return []
    finally:
        os.close(fd)


def inspect(root: str, host_path: str, read: bool = True) -> FileState | None:
    """The state of ``host_path`` below ``root``; None when nothing is there."""
    parents, name = split(host_path)
    dfd = _open_dir(root, parents)
    if dfd is None:
        return None
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        mode = stat_module.S_IMODE(st.st_mode)
        if stat_module.S_ISLNK(st.st_mode):
            return FileState(
                "symlink", mode, st.st_uid, st.st_gid, target=os.readlink(name, dir_fd=dfd)
            )
        if stat_module.S_ISDIR(st.st_mode):
            return FileState("dir", mode, st.st_uid, st.st_gid)
        if not stat_module.S_ISREG(st.st_mode):
            return FileState("other", mode, st.st_uid, st.st_gid)
        data = None
        if read:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            with os.fdopen(fd, "rb") as stream:
                data = stream.read()
        return FileState("file", mode, st.st_uid, st.st_gid, data)
    finally:
        os.close(dfd)


def times(root: str, host_path: str) -> list[int] | None:
    """``[atime, mtime]`` in ns of what is at ``host_path`` (not following a symlink there);
    None when nothing is, or the way is unsafe."""
    try:
        if not _components(host_path):
            st = os.stat(root)
        else:
            parents, name = split(host_path)
            dfd = _open_dir(root, parents)
            if dfd is None:
                return None
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(dfd)
    except OSError:
        return None
    return [st.st_atime_ns, st.st_mtime_ns]


def set_times(root: str, host_path: str, ns: list[int]) -> None:
    """Give ``host_path`` the times ``times`` returned (nothing when it is gone)."""
    try:
        if not _components(host_path):
            os.utime(root, ns=(ns[0], ns[1]))
            return
        parents, name = split(host_path)
        dfd = _open_dir(root, parents)
        if dfd is None:
            return
        try:
            os.utime(name, ns=(ns[0], ns[1]), dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(dfd)
    except FileNotFoundError:
        return


def write_file(
    root: str,
    host_path: str,
    data: bytes,
    mode: int,
    uid: int,
    gid: int,
    created_dirs: list | None = None,
) -> None:
    """Atomically replace ``host_path`` with ``data``, owner and mode set before it appears."""
    parents, name = split(host_path)
    dfd = _open_dir(root, parents, create=True, created=created_dirs)
    tmp = _temporary_name(name)
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not stat_module.S_ISREG(st.st_mode):
                kind = "a symlink" if stat_module.S_ISLNK(st.st_mode) else "not a regular file"
                raise UnsafePath(errno.EEXIST, f"{host_path} is {kind}; refusing to replace it")
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            os.unlink(tmp, dir_fd=dfd)  # left over from a killed run of this pid
        except FileNotFoundError:
            pass
        fd = os.open(tmp, flags | os.O_EXCL, 0o600, dir_fd=dfd)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=dfd)
            raise
        else:
            os.close(fd)
        if before_rename is not None:
            before_rename(host_path)
        _rename_into_place(dfd, tmp, name)
    finally:
        os.close(dfd)


def make_symlink(
    root: str,
    host_path: str,
    target: str,
    created_dirs: list | None = None,
    replace_file: bool = False,
) -> None:
    """Atomically make ``host_path`` a symlink to ``target``: a link under a temporary name in
    the same directory, then rename. Replaces a symlink (or, with ``replace_file``, a regular
    file); never a directory or anything else."""
    parents, name = split(host_path)
    dfd = _open_dir(root, parents, create=True, created=created_dirs)
    tmp = _temporary_name(name)
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not (
                stat_module.S_ISLNK(st.st_mode)
                or (replace_file and stat_module.S_ISREG(st.st_mode))
            ):
                raise UnsafePath(
                    errno.EEXIST, f"{host_path} is not a symlink; refusing to replace it"
                )
        except FileNotFoundError:
            pass
        try:
            os.unlink(tmp, dir_fd=dfd)  # left over from a killed run of this pid
        except FileNotFoundError:
            pass
        os.symlink(target, tmp, dir_fd=dfd)
        _rename_into_place(dfd, tmp, name)
    finally:
        os.close(dfd)


def _rename_into_place(dfd: int, tmp: str, name: str) -> None:
    """The atomic step: the finished temp entry replaces ``name``; then the directory is synced."""
    try:
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        os.unlink(tmp, dir_fd=dfd)
        raise
    os.fsync(dfd)


def set_metadata(root: str, host_path: str, mode: int, uid: int, gid: int) -> None:
    parents, name = split(host_path)
    dfd = _open_dir(root, parents)
    if dfd is None:
        raise FileNotFoundError(errno.ENOENT, host_path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def make_directory(
    root: str, host_path: str, mode: int, uid: int, gid: int, created_dirs: list | None = None
) -> bool:
    """Create ``host_path`` (and missing parents); True if the directory itself was created."""
    parents, name = split(host_path)
    dfd = _open_dir(root, parents, create=True, created=created_dirs)
    try:
        try:
            os.mkdir(name, 0o700, dir_fd=dfd)
            made = True
        except FileExistsError:
            made = False
        fd = os.open(name, DIR_FLAGS, dir_fd=dfd)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return made
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(
                error.errno, f"{host_path} is {_describe(dfd, name)}; refusing to follow it"
            ) from None
        raise
    finally:
        os.close(dfd)


def remove_file(root: str, host_path: str) -> bool:
    """unlink (a symlink itself, never what it points to)."""
    parents, name = split(host_path)
    dfd = _open_dir(root, parents)
    if dfd is None:
        return False
    try:
        os.unlink(name, dir_fd=dfd)
        os.fsync(dfd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(dfd)


def remove_empty_directory(root: str, host_path: str) -> bool:
    """rmdir; False (and nothing done) when it is missing or not empty."""
    parents, name = split(host_path)
    dfd = _open_dir(root, parents)
    if dfd is None:
        return False
    try:
        os.rmdir(name, dir_fd=dfd)
        return True
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            return False
        raise
    finally:
        os.close(dfd)
