"""Host configurations run with the real buildout, in a sandbox or into a scratch install root."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

from support.paths import BASE_CFG, BUILDOUT, SYSTEM_RECIPES
from support.sandbox import Sandbox


class Host:
    """Host configurations in a directory, run with the real buildout inside a sandbox."""

    def __init__(self, sandbox: Sandbox | None, directory: str, root: str = "/"):
        self.sandbox = sandbox
        self.directory = directory
        self.root = root

    def write(self, text: str, name: str = "host.cfg") -> str:
        """Write a host configuration; ``{base}`` stands for profiles/base.cfg."""
        path = os.path.join(self.directory, name)
        body = textwrap.dedent(text).replace("{base}", BASE_CFG).replace("{root}", self.root)
        with open(path, "w") as stream:
            stream.write(body)
        return path

    def _run(self, command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        if self.sandbox is not None:
            return self.sandbox.run(command, timeout=timeout, cwd=self.directory)
        return subprocess.run(
            command, capture_output=True, text=True, cwd=self.directory, timeout=timeout
        )

    def buildout(self, *args: str, name: str = "host.cfg") -> subprocess.CompletedProcess:
        return self._run([BUILDOUT, "-c", os.path.join(self.directory, name), *args])

    def plan(self, *args: str, name: str = "host.cfg") -> subprocess.CompletedProcess:
        return self._run([SYSTEM_RECIPES, "plan", "-c", os.path.join(self.directory, name), *args])

    def path(self, host_path: str) -> str:
        """Where ``host_path`` of the configured host can be read from the test process."""
        if self.sandbox is not None:
            return self.sandbox.path(host_path)
        return os.path.join(self.root, host_path.lstrip("/"))

    def read(self, host_path: str) -> str:
        with open(self.path(host_path), encoding="utf-8") as stream:
            return stream.read()

    def exists(self, host_path: str) -> bool:
        return os.path.lexists(self.path(host_path))

    def tree(self, top: str) -> dict[str, tuple]:
        """{host path: (kind, mode, uid, gid, content-or-None)} below ``top``, for comparisons."""
        result = {}
        base = self.path(top)
        for dirpath, dirnames, filenames in os.walk(base):
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                rel = top.rstrip("/") + full[len(base) :]
                if os.path.isfile(full) and not os.path.islink(full):
                    with open(full, "rb") as stream:
                        content = stream.read()
                    result[rel] = (
                        "file",
                        st.st_mode & 0o7777,
                        st.st_uid,
                        st.st_gid,
                        content,
                        st.st_ino,
                        st.st_mtime_ns,
                    )
                else:
                    result[rel] = (
                        "dir" if os.path.isdir(full) else "other",
                        st.st_mode & 0o7777,
                        st.st_uid,
                        st.st_gid,
                        None,
                        None,
                        None,
                    )
        return result


def make_scratch_root(path: str) -> str:
    """An install root with just enough of /etc for accounts and layout detection."""
    os.makedirs(os.path.join(path, "etc"), exist_ok=True)
    for name in ("passwd", "group", "shadow", "gshadow", "os-release"):
        source = os.path.join("/etc", name)
        # shadow and gshadow are root's: an unprivileged run (pytest -m "not sandbox and not
        # daemon") plans without them
        if os.path.exists(source) and os.access(source, os.R_OK):
            shutil.copy2(os.path.realpath(source), os.path.join(path, "etc", name))
    return path


def link_nagios_plugins(root: str) -> None:
    """The NRPE recipe checks that its plugins are installed below the root: the machine's."""
    link = os.path.join(root, "usr/lib/nagios/plugins")
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/usr/lib/nagios/plugins", link)
