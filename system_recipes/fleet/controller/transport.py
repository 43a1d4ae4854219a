"""Reaching hosts: the operator's own OpenSSH client, one control master per host.

The client is ``ssh`` as a subprocess, so ``~/.ssh/config`` (ProxyJump, certificates, the agent,
FIDO keys) works as it does for the operator. What this module adds is fixed on every call:

- host keys come only from the pinned file beside the model (``UserKnownHostsFile``, no global
  file, ``StrictHostKeyChecking=yes``, ``UpdateHostKeys=no``), looked up under the model's host
  name (``HostKeyAlias``), so the file reads ``app1 ssh-ed25519 ...`` and nothing is trusted on
  first use;
- ``BatchMode=yes`` (never a prompt), ``ConnectTimeout`` and ``ServerAliveInterval`` x
  ``ServerAliveCountMax``, 1 s x 3 (a host that stops answering is lost within 5 s, not at
  TCP's pace);
- one master per host (``-S DIR/%C`` in a private 0700 directory: a short path, since a Unix
  socket path longer than ~104 bytes breaks), owned by this process and ended by ``-O exit``
  -- or by the run's watchdog process when this one ends without closing them (killed);
- a command goes through its master or not at all (``ProxyCommand=false`` on its client): a
  connection lost is reported as one, whatever the command (:class:`TransportError`
  ``unreachable``), never followed by a new connection behind the master's back;
- the files the controller reads (``-F``, the pinned keys, identity files) are checked
  before any host is tried (:meth:`Connections.check`);
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
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from system_recipes.fleet.controller.ssh_problems import (
    SUDO_PASSWORD,
    explain,
    host_key_problem,
    last_line,
    sudo_problem,
)


class TransportError(Exception):
    """A host could not be reached or refused us; ``str()`` is one line naming the host.
    ``refused``: the host answered, but we refused it (its host key is not the pinned one).
    ``unreachable``: ``"before"`` when the connection failed (or was found lost) before the
    command ran, so nothing ran on the host; ``"during"`` when it was lost while a command
    ran; ``""`` when the host answered with a problem (sudo wants a password, ...)."""

    def __init__(self, host: str, problem: str, refused: bool = False, unreachable: str = ""):
        self.host, self.problem, self.refused = host, problem, refused
        self.unreachable = unreachable
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


class ControllerError(Exception):
    """A mistake on the controller, found before any host is tried: an ssh_config, the pinned
    host keys or an identity file that cannot be read. ``source`` names the file (or ``-F
    FILE``), ``problem`` says what is wrong in one line."""

    def __init__(self, source: str, problem: str):
        self.source, self.problem = source, problem
        super().__init__(f"{source}: {problem}")


# The run's watchdog: a process of its own that reads the pids of the control masters from a
# pipe of the controller ("+PID", "-PID"), and at the end of the pipe (the controller ended,
# however: even kill -9) ends the masters still listed -- each mux client of a master ends with
# it -- and removes the socket directory. A pid is ended only while its command line names the
# run's own socket directory (a pid reused since is left alone).
WATCHER = """
import os, shutil, signal, subprocess, sys, time
directory = sys.argv[1]
mark = directory + "/"
pids = set()
for line in sys.stdin:
    word = line.strip()
    if word[1:].isdigit():
        (pids.add if word[0] == "+" else pids.discard)(int(word[1:]))
def ours(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as stream:
            return os.fsencode(mark) in stream.read()
    except FileNotFoundError:
        return False
    except OSError:
        pass
    found = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True)
    return os.fsencode(mark) in found.stdout
def end(sign):
    for pid in [pid for pid in pids if ours(pid)]:
        try:
            os.kill(pid, sign)
        except OSError:
            pass
end(signal.SIGTERM)
deadline = time.monotonic() + 2
while any(ours(pid) for pid in pids) and time.monotonic() < deadline:
    time.sleep(0.05)
end(signal.SIGKILL)
shutil.rmtree(directory, ignore_errors=True)
"""


class Connections:
    """The control masters of one run. ``open(target)`` connects (or raises a one-line
    :class:`TransportError`); ``close()`` ends every master and removes the socket directory.
    A watchdog process ends the masters when the controller ends without ``close()`` (killed).

    ``known_hosts``: the pinned host keys. ``config``: an ssh_config to use instead of
    ~/.ssh/config (``-F``). ``entry_point``: the host's ``system-recipes``. ``sudo``: ``None``
    to use ``sudo -n`` exactly when the ssh user is not root. ``alive_interval`` x
    ``alive_count``: a host that stops answering is lost after about (count + 1) x interval
    seconds (docs/fleet-transport.md says within 5 s)."""

    def __init__(
        self,
        known_hosts: str,
        *,
        config: str | None = None,
        entry_point: str = "system-recipes",
        sudo: bool | None = None,
        connect_timeout: int = 5,
        alive_interval: int = 1,
        alive_count: int = 3,
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
        self.resolved: dict[Target, dict[str, list[str]]] = {}
        self.lock = threading.Lock()
        self.watcher: subprocess.Popen | None = None
        self._defaults: list[str] | None = None  # default_identities()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def arguments(self, target: Target) -> list[str]:
        """ssh's options for ``target`` (before the destination)."""
        args = [*self.options, "-o", f"HostKeyAlias={target.name}"]
        if target.user:
            args += ["-l", target.user]
        if target.port:
            args += ["-p", str(target.port)]
        return args

    def resolve(self, target: Target) -> dict[str, list[str]]:
        """What ssh would use for ``target`` (``ssh -G``: every option after ~/.ssh/config and
        %-expansion, a list of values each), without connecting; kept for the run."""
        if target in self.resolved:
            return self.resolved[target]
        result = subprocess.run(
            [self.ssh, *self.arguments(target), "-G", target.destination],
            capture_output=True,
            text=True,
        )
        if result.returncode:  # its first line is the cause ("FILE line 3: Bad ...")
            cause = next((line for line in result.stderr.splitlines() if line.strip()), "")
            raise TransportError(target.name, f"ssh -G: {cause}", unreachable="before")
        values: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            key, _, value = line.partition(" ")
            values.setdefault(key, []).append(value)
        self.resolved[target] = values
        return values

    def check(self, targets: list[Target], forks: int = 10) -> None:
        """Before any host is tried: the files the controller reads (the ``-F`` ssh_config,
        the pinned host keys, each identity file ssh is told to use) must be readable, and
        ssh must accept the configuration for every host. Raises :class:`ControllerError`."""
        config = f"-F {self.config}" if self.config else "~/.ssh/config"
        for source, path in ((f"-F {self.config}", self.config), (None, self.known_hosts)):
            if path is None or source is None and not os.path.lexists(path):
                continue  # no host key pinned yet: each host says so, with `fleet trust`
            try:
                with open(path, "rb"):
                    pass
            except OSError as error:
                what = "the ssh_config" if source else "the pinned host keys"
                raise ControllerError(
                    source or path, f"cannot read {what} ({error.strerror}); no host was tried"
                ) from None
        from concurrent.futures import ThreadPoolExecutor

        def resolve(target: Target) -> dict[str, list[str]] | str:
            try:
                return self.resolve(target)
            except TransportError as error:
                return error.problem

        with ThreadPoolExecutor(max_workers=max(1, forks)) as pool:
            found = dict(zip(targets, pool.map(resolve, targets), strict=True))
        for target, values in found.items():
            if isinstance(values, str):
                raise ControllerError(config, f"{values} (for {target.name}); no host was tried")
            identities = values.get("identityfile", [])
            if identities == self.default_identities():
                continue  # none configured: ssh tries its defaults, those present
            for path in identities:
                if path == "none" or "%" in path or "${" in path:
                    continue  # no file, or ssh's tokens: expanded by ssh as it connects
                try:
                    with open(os.path.expanduser(path), "rb"):
                        pass
                except OSError as error:
                    raise ControllerError(
                        path,
                        f"cannot read the identity file {target.name} is reached with "
                        f"({error.strerror}; IdentityFile in {config}); no host was tried",
                    ) from None

    def default_identities(self) -> list[str]:
        """The identity files this ssh tries when none is configured (``~/.ssh/id_rsa``...)."""
        if self._defaults is None:
            result = subprocess.run(
                [self.ssh, "-F", "/dev/null", "-G", "localhost"], capture_output=True, text=True
            )
            self._defaults = [
                line.partition(" ")[2]
                for line in result.stdout.splitlines()
                if line.startswith("identityfile ")
            ]
        return self._defaults

    def open(self, target: Target) -> Connection:
        connection = Connection(self, target)
        connection.open()
        self.connections[target.name] = connection
        return connection

    def watch(self, pid: int, started: bool = True) -> None:
        """Tell the watchdog of a master started (or ended); it starts with the first one."""
        with self.lock:
            if self.watcher is None:
                if not started:
                    return
                self.watcher = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", WATCHER, self.directory],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    process_group=0,
                )  # a terminal's Ctrl-C is the run's to handle, not the watchdog's
            try:
                assert self.watcher.stdin is not None
                self.watcher.stdin.write(f"{'+' if started else '-'}{pid}\n")
                self.watcher.stdin.flush()
            except (BrokenPipeError, OSError):  # the watchdog is gone: nothing to tell
                pass

    def close(self) -> None:
        for connection in list(self.connections.values()):
            connection.close()
        self.connections.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        with self.lock:
            watcher, self.watcher = self.watcher, None
        if watcher is not None:
            try:
                assert watcher.stdin is not None
                watcher.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                watcher.wait(timeout=5)
            except subprocess.TimeoutExpired:
                watcher.kill()
                watcher.wait()


class Connection:
    """One host's control master and the commands run through it."""

    def __init__(self, owner: Connections, target: Target):
        self.owner, self.target = owner, target
        self.name = target.name
        self.args = owner.arguments(target)
        self.master: subprocess.Popen | None = None
        self.lost = ""  # why the master ended on its own, once it did
        resolved = owner.resolve(target)
        self.user, self.control_path = resolved["user"][0], resolved["controlpath"][0]
        self.address = f"{resolved['hostname'][0]}:{resolved['port'][0]}"
        # a command's client names the master's socket as expanded (%C hashes ProxyJump too,
        # which the client's ProxyCommand=false would change)
        socket = self.args.index("-S") + 1
        self.client_args = [*self.args[:socket], self.control_path, *self.args[socket + 1 :]]
        self.sudo = owner.sudo if owner.sudo is not None else self.user != "root"

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
        self.owner.watch(self.master.pid)
        deadline = time.monotonic() + 3 * self.owner.connect_timeout + 5
        while not os.path.exists(self.control_path):
            if time.monotonic() > deadline:  # connected, but the login never completes
                self.master.kill()
                self.master.wait()
                self.close()
                raise TransportError(
                    self.name,
                    f"({self.address}) no login within {3 * self.owner.connect_timeout + 5} s",
                    unreachable="before",
                )
            if self.master.poll() is not None:
                stderr = self.master.stderr.read() if self.master.stderr else ""
                self.close()
                problem = explain(self, stderr)
                refused = bool(host_key_problem(stderr))
                raise TransportError(
                    self.name, problem, refused=refused, unreachable="" if refused else "before"
                )
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
        self.owner.watch(self.master.pid, started=False)
        self.master = None

    def _check_master(self, when: str, settle: float = 0.0) -> None:
        """A master that has ended (the host went away: keep-alives unanswered, the
        connection reset) is an error, not a reason to connect again without one: a lost
        connection ``when`` (``"before"`` a command ran, or ``"during"`` one). ``settle``: how
        long an ending master may take to exit (its clients see the end first)."""
        if self.master is None:
            if self.lost:  # found lost before: every later command is refused the same way
                raise TransportError(self.name, self.lost, unreachable="before")
            return
        try:
            self.master.wait(timeout=settle) if settle else self.master.poll()
        except subprocess.TimeoutExpired:
            pass
        if self.master.poll() is None:
            return
        stderr = self.master.stderr.read() if self.master.stderr else ""
        status = self.master.returncode
        self.close()
        self.lost = "connection lost: " + (last_line(stderr) or f"ssh exited with status {status}")
        raise TransportError(self.name, self.lost, unreachable=when)

    def remote_command(self, action: str, arguments: list[str] | tuple[str, ...] = ()) -> str:
        """The one command a host runs: ``[sudo -n] ENTRY fleet-host ACTION ...`` (what the
        sudoers rule allows); ssh hands it to the user's shell, hence the quoting."""
        command = [self.owner.entry_point, "fleet-host", action, *arguments]
        if self.sudo:
            command[:0] = ["sudo", "-n"]
        return " ".join(shlex.quote(word) for word in command)

    def run_over_new_connection(
        self, action: str, arguments: list[str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``fleet-host ACTION`` over a connection of its own, not the master: to show the host
        still lets the controller in (the confirmation). Raises subprocess.TimeoutExpired."""
        args, skip = [], False
        for word in self.args:  # the master's socket (-S PATH) left out
            if skip or word == "-S":
                skip = not skip
                continue
            args.append(word)
        return subprocess.run(
            [
                self.owner.ssh,
                *args,
                "-o",
                "ControlPath=none",
                "-T",
                self.target.destination,
                self.remote_command(action, arguments),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            process_group=0,
        )

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
        started = time.monotonic()
        result = self.raw(self.remote_command(action, arguments), stdin, on_event, timeout)
        result.seconds = time.monotonic() - started
        if result.code == 255:
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
        stdin written from a thread: neither side can fill a pipe and wait for the other).
        Raises TransportError when the master was lost, before the command or during it."""
        self._check_master("before")
        process = subprocess.Popen(
            [
                self.owner.ssh,
                *self.client_args,
                "-T",
                "-o",
                "ControlMaster=no",
                # through the master or not at all: a client whose master went away must not
                # connect again on its own (and wait ConnectTimeout for a host that is gone)
                "-o",
                "ProxyCommand=false",
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
        if result.code == 255:  # ssh's own failure (or the command's 255): was it the master?
            self._check_master("during", settle=1.0)
        return result


def _feed(stream: IO[str], text: str) -> None:
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
