"""Reaching hosts: the operator's own OpenSSH client, one control master per host.

The client is ``ssh`` as a subprocess, so ``~/.ssh/config`` (ProxyJump, certificates, the agent,
FIDO keys) works as it does for the operator. What this module adds is fixed on every call:

- host keys come only from the pinned file beside the model (``UserKnownHostsFile``, no global
  file, ``StrictHostKeyChecking=yes``, ``UpdateHostKeys=no``), looked up under the model's host
  name (``HostKeyAlias``), so the file reads ``app1 ssh-ed25519 ...`` and nothing is trusted on
  first use;
- ``BatchMode=yes`` (never a prompt), ``ConnectTimeout`` and ``ServerAliveInterval`` x
  ``ServerAliveCountMax`` (a dead host is noticed in seconds, not at TCP's pace);
- one master per host (``-S DIR/%C`` in a private 0700 directory: a short path, since a Unix
  socket path longer than ~104 bytes breaks), owned by this process and ended by ``-O exit``;
- the one remote command is ``[sudo -n] ENTRY fleet-host ACTION``, configuration on stdin.

Every failure is a :class:`TransportError`: one line that names the host (worded by
:mod:`.ssh_problems`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .ssh_problems import SUDO_PASSWORD, explain, host_key_problem, last_line, sudo_problem


class TransportError(Exception):
    """A host could not be reached or refused us; ``str()`` is one line naming the host.
    ``refused``: the host answered, but we refused it (its host key is not the pinned one)."""

    def __init__(self, host: str, problem: str, refused: bool = False):
        self.host, self.problem, self.refused = host, problem, refused
        super().__init__(f"{host}: {problem}")


@dataclass(frozen=True)
class Target:
    """How to reach one host: ``name`` is the model's host name (the key of its pinned host
    key), ``destination`` what ssh connects to (its address, or a name ~/.ssh/config knows)."""

    name: str
    destination: str
    user: str | None = None
    port: int | None = None


@dataclass
class Result:
    """What one remote command gave: its exit status, the JSON objects it printed on stdout
    (one per line; other lines in ``text``), its stderr and how long it took."""

    host: str
    code: int
    events: list[dict] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    stderr: str = ""
    seconds: float = 0.0

    @property
    def last(self) -> dict:
        return self.events[-1] if self.events else {}


class Connections:
    """The control masters of one run. ``open(target)`` connects (or raises a one-line
    :class:`TransportError`); ``close()`` ends every master and removes the socket directory.

    ``known_hosts``: the pinned host keys. ``config``: an ssh_config to use instead of
    ~/.ssh/config (``-F``). ``entry_point``: the host's ``system-recipes``. ``sudo``: ``None``
    to use ``sudo -n`` exactly when the ssh user is not root."""

    def __init__(
        self,
        known_hosts: str,
        *,
        config: str | None = None,
        entry_point: str = "system-recipes",
        sudo: bool | None = None,
        connect_timeout: int = 5,
        alive_interval: int = 2,
        alive_count: int = 2,
        ssh: str = "ssh",
        model: str = "MODEL",
    ):
        self.model = model  # the model's path, for the hint of a host key error
        self.connect_timeout = connect_timeout
        self.known_hosts = os.path.abspath(known_hosts)
        self.config = config
        self.entry_point = entry_point
        self.sudo = sudo
        self.ssh = ssh
        self.directory = tempfile.mkdtemp(prefix="sr-")  # 0700; /tmp/sr-XXXXXXXX/<40 hex>
        self.options = [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "CheckHostIP=no",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            f"ServerAliveInterval={alive_interval}",
            "-o",
            f"ServerAliveCountMax={alive_count}",
            "-S",
            os.path.join(self.directory, "%C"),
        ]
        if config:
            self.options[:0] = ["-F", config]
        self.connections: dict[str, Connection] = {}

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self, target: Target) -> Connection:
        connection = Connection(self, target)
        connection.open()
        self.connections[target.name] = connection
        return connection

    def close(self) -> None:
        for connection in list(self.connections.values()):
            connection.close()
        self.connections.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


class Connection:
    """One host's control master and the commands run through it."""

    def __init__(self, owner: Connections, target: Target):
        self.owner, self.target = owner, target
        self.name = target.name
        self.args = [*owner.options, "-o", f"HostKeyAlias={target.name}"]
        if target.user:
            self.args += ["-l", target.user]
        if target.port:
            self.args += ["-p", str(target.port)]
        self.master: subprocess.Popen | None = None
        resolved = self._resolve()
        self.user, self.control_path = resolved["user"], resolved["controlpath"]
        self.address = f"{resolved['hostname']}:{resolved['port']}"
        self.sudo = owner.sudo if owner.sudo is not None else self.user != "root"

    def _resolve(self) -> dict[str, str]:
        """What ssh would use (``ssh -G``: the user, host name, port and the control path after
        ~/.ssh/config and %-expansion), without connecting."""
        result = subprocess.run(
            [self.owner.ssh, *self.args, "-G", self.target.destination],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise TransportError(self.name, f"ssh -G: {last_line(result.stderr)}")
        values = dict(line.partition(" ")[::2] for line in result.stdout.splitlines())
        return {key: values.get(key, "") for key in ("user", "hostname", "port", "controlpath")}

    def open(self) -> None:
        """Start the master and wait until its socket exists (it is made only after the host
        is authenticated); a master that exits first is a refused connection, explained."""
        self.master = subprocess.Popen(
            [
                self.owner.ssh,
                *self.args,
                "-M",
                "-N",
                "-T",
                "-o",
                "ControlMaster=yes",
                "-o",
                "LogLevel=INFO",
                "-o",
                "ControlPersist=no",
                self.target.destination,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0,
        )  # a terminal's Ctrl-C is the run's to handle
        deadline = time.monotonic() + 3 * self.owner.connect_timeout + 5
        while not os.path.exists(self.control_path):
            if time.monotonic() > deadline:  # connected, but the login never completes
                self.master.kill()
                self.master.wait()
                self.close()
                raise TransportError(
                    self.name,
                    f"({self.address}) no login within {3 * self.owner.connect_timeout + 5} s",
                )
            if self.master.poll() is not None:
                stderr = self.master.stderr.read() if self.master.stderr else ""
                self.close()
                problem = explain(self, stderr)
                raise TransportError(self.name, problem, refused=bool(host_key_problem(stderr)))
            time.sleep(0.002)

    def close(self) -> None:
        if self.master is None:
            return
        if self.master.poll() is None:
            subprocess.run(
                [self.owner.ssh, *self.args, "-O", "exit", self.target.destination],
                capture_output=True,
                timeout=10,
            )
            try:
                self.master.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait()
        if self.master.stderr:
            self.master.stderr.close()
        self.master = None

    def _check_master(self) -> None:
        """A master that has ended (the host went away: keep-alives unanswered, the
        connection reset) is an error, not a reason to connect again without one."""
        if self.master is None or self.master.poll() is None:
            return
        stderr = self.master.stderr.read() if self.master.stderr else ""
        status = self.master.returncode
        self.close()
        raise TransportError(
            self.name,
            "connection lost: " + (last_line(stderr) or f"ssh exited with status {status}"),
        )

    def remote_command(self, action: str, arguments: list[str] | tuple[str, ...] = ()) -> str:
        """The one command a host runs: ``[sudo -n] ENTRY fleet-host ACTION ...`` (what the
        sudoers rule allows); ssh hands it to the user's shell, hence the quoting."""
        command = [self.owner.entry_point, "fleet-host", action, *arguments]
        if self.sudo:
            command[:0] = ["sudo", "-n"]
        return " ".join(shlex.quote(word) for word in command)

    def run(
        self,
        action: str,
        stdin: str = "",
        arguments: list[str] | tuple[str, ...] = (),
        on_event: Callable[[dict], None] | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Run ``fleet-host ACTION`` through the master, ``stdin`` as its standard input;
        ``on_event`` is called with each JSON line as it arrives. Raises TransportError when
        ssh or sudo failed (not when fleet-host itself exits non-zero: see ``Result.code``)."""
        self._check_master()
        started = time.monotonic()
        result = self.raw(self.remote_command(action, arguments), stdin, on_event, timeout)
        result.seconds = time.monotonic() - started
        if result.code == 255:
            self._check_master()
            raise TransportError(self.name, explain(self, result.stderr))
        if self.sudo and not result.events and any(s in result.stderr for s in SUDO_PASSWORD):
            raise TransportError(self.name, sudo_problem(self))
        if result.code == 127 or (not result.events and "command not found" in result.stderr):
            raise TransportError(
                self.name,
                f"{self.owner.entry_point} is not installed ({last_line(result.stderr)})",
            )
        return result

    def raw(
        self,
        command: str,
        stdin: str = "",
        on_event: Callable[[dict], None] | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Run a shell command line on the host through the master (stdout read line by line,
        stdin written from a thread: neither side can fill a pipe and wait for the other)."""
        process = subprocess.Popen(
            [
                self.owner.ssh,
                *self.args,
                "-T",
                "-o",
                "ControlMaster=no",
                "-o",
                "LogLevel=ERROR",
                self.target.destination,
                command,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0,
        )  # Ctrl-C stops new hosts; a command in flight finishes
        out, err = process.stdout, process.stderr
        assert out is not None and err is not None  # PIPE
        writer = threading.Thread(target=_feed, args=(process.stdin, stdin), daemon=True)
        writer.start()
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.append(err.read()), daemon=True)
        reader.start()
        result = Result(self.name, 0)
        timer = threading.Timer(timeout, process.kill) if timeout else None
        if timer:
            timer.start()
        try:
            for line in out:
                event = _event(line)
                if event is None:
                    result.text.append(line.rstrip("\n"))
                    continue
                result.events.append(event)
                if on_event:
                    on_event(event)
        finally:
            if timer:
                timer.cancel()
            result.code = process.wait()
            writer.join()
            reader.join()
            out.close()
            err.close()
        result.stderr = "".join(errors)
        return result


def _feed(stream, text: str) -> None:
    try:
        if text:
            stream.write(text)
        stream.close()
    except (BrokenPipeError, OSError):  # the command ended without reading all of it
        pass


def _event(line: str) -> dict | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
