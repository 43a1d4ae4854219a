"""A private mount namespace whose /etc, /var and /run are throw-away overlays.

Tests that exercise "root writes the real path" run their commands in a :class:`Sandbox`:
the host's real directories are the read-only lower layer, every write lands in a tmpfs that
disappears with the namespace. The test process itself stays outside and reads the sandbox's
view through ``/proc/PID/root``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time

DEFAULT_OVERLAYS = ("/etc", "/var", "/run")


class Sandbox:
    def __init__(self, overlays: tuple[str, ...] = DEFAULT_OVERLAYS):
        self.overlays = overlays
        base = "/tmp/.sr-sandbox"  # a tmpfs is mounted here inside the namespace only
        os.makedirs(base, exist_ok=True)
        lines = ["set -e", f"mount -t tmpfs -o mode=0755 sandbox {base}"]
        for index, directory in enumerate(overlays):
            upper, work = f"{base}/{index}/upper", f"{base}/{index}/work"
            lines.append(f"mkdir -p {upper} {work}")
            lines.append(
                f"mount -t overlay overlay -o lowerdir={directory},upperdir={upper},"
                f"workdir={work} {directory}"
            )
        lines += ["mkdir -p /run/sshd /run/lock", "echo ready", "exec sleep infinity"]
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = self.process.stdout.readline().strip()
        if ready != "ready":
            error = self.process.stderr.read()
            self.process.kill()
            raise RuntimeError(f"sandbox setup failed: {error}")
        self.pid = self.process.pid
        self._namespace = os.readlink(f"/proc/{self.pid}/ns/mnt")

    def command(self, command: list[str] | str) -> list[str]:
        if isinstance(command, str):
            command = ["sh", "-c", command]
        return ["nsenter", "-t", str(self.pid), "-m", "--", *command]

    def run(
        self, command: list[str] | str, check: bool = False, timeout: float = 300, **kwargs
    ) -> subprocess.CompletedProcess:
        """Run a command inside the namespace; output is captured as text."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        result = subprocess.run(self.command(command), timeout=timeout, **kwargs)
        if check and result.returncode:
            raise AssertionError(
                f"{command!r} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def popen(self, command: list[str] | str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(command), **kwargs)

    def path(self, host_path: str) -> str:
        """The sandbox's view of ``host_path``, readable from the test process."""
        return f"/proc/{self.pid}/root{host_path}"

    def read(self, host_path: str) -> str:
        with open(self.path(host_path), encoding="utf-8") as stream:
            return stream.read()

    def exists(self, host_path: str) -> bool:
        return os.path.lexists(self.path(host_path))

    def stat(self, host_path: str) -> os.stat_result:
        return os.lstat(self.path(host_path))

    def processes(self) -> list[int]:
        """PIDs of every process living in this namespace except its keeper."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.pid:
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == self._namespace:
                    found.append(int(entry))
            except OSError:
                continue
        return found

    def close(self) -> None:
        """Kill every process started in the namespace (by PID), then the namespace itself."""
        for attempt in range(3):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGTERM if attempt == 0 else signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def quote(command: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in command)
