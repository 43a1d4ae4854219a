"""Test hosts for the fleet: N sshd hosts on one machine, each in its own network namespace.

Each host is a network namespace joined to a bridge of the controller (the root namespace) by a
veth pair, with its own mount and UTS namespace: private ``/etc``, ``/var``, ``/run``, ``/root``
(and ``/opt``) as overlays over a tmpfs, its own hostname, its own ssh host key and an sshd that
lets in the test's key (root, and the users :meth:`TestHost.add_user` creates). Everything else
(``/usr``, ``/tmp``, this checkout and its venv) is the machine's, so the host runs this
checkout's ``system-recipes`` as its entry point.

Use it as a pytest plugin (``pytest_plugins = ["fleet_hosts"]`` in a test module, which then
imports nothing from here): the ``fleet_hosts`` fixture (module scope) gives four hosts,
``make_hosts(n)`` builds hosts of a test's own. Every object is named ``srf<suffix>...`` with a random suffix, and teardown kills only the
processes living in the hosts' own network namespaces (by pid), deletes each veth, namespace and
the bridge. A run killed before its teardown is cleaned up by the next one (its owner's pid is
recorded in ``/tmp/sr-fleet-hosts/``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from support.markers import needs

REGISTRY = "/tmp/sr-fleet-hosts"
BIN = os.path.dirname(sys.executable)
#: the host's entry point: this checkout's, from the venv running the tests
ENTRY_POINT = os.path.join(BIN, "system-recipes")
OVERLAYS = ("/etc", "/var", "/run", "/root", "/opt")

SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
UseDNS no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
"""

# Runs as the namespace's first process and becomes its sshd. Root's shell is /bin/sh (dash),
# which reads no rc file for a command: rc files cost hundreds of ms per command.
SETUP = """\
set -e
mount -t tmpfs -o mode=0755 fleet-host {base}
{overlays}
hostname {name}
echo "127.0.1.1 {name}" >> /etc/hosts
usermod -s /bin/sh root
mkdir -p /run/sshd /run/lock /root/.ssh /etc/ssh
chmod 0700 /root/.ssh
cat {client_key}.pub > /root/.ssh/authorized_keys
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C {name} -f /etc/ssh/ssh_host_ed25519_key
cp {sshd_config} /etc/ssh/sshd_config
echo ready
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config 2>>{log}
"""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class TestHost:
    """One host: ``name``, ``address`` (where its sshd listens), ``host_key`` (its public key
    line) and ``fingerprint`` (``SHA256:...``), ``pid`` (its sshd listener)."""

    __test__ = False  # not a test class, for pytest

    name: str
    address: str
    netns: str
    veth: str
    process: subprocess.Popen
    log: str = ""  # sshd's own log (LogLevel ERROR)
    host_key: str = ""
    fingerprint: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def command(self, command: list[str] | str) -> list[str]:
        """``command`` run inside the host (its network, mount and UTS namespaces)."""
        if isinstance(command, str):
            command = ["sh", "-c", command]
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "-u", "--", *command]

    def run(
        self, command: list[str] | str, check: bool = True, **kwargs
    ) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 120)
        result = subprocess.run(self.command(command), **kwargs)
        if check and result.returncode:
            raise AssertionError(
                f"{self.name}: {command!r} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def path(self, host_path: str) -> str:
        """Where ``host_path`` of the host can be read from the test process."""
        return f"/proc/{self.pid}/root{host_path}"

    def read(self, host_path: str) -> str:
        with open(self.path(host_path), encoding="utf-8") as stream:
            return stream.read()

    def exists(self, host_path: str) -> bool:
        return os.path.lexists(self.path(host_path))

    def processes(self) -> list[int]:
        """Every process in the host's network namespace: its sshd, the per-connection sshd
        children and whatever they started. Nothing else can be in a namespace this run made."""
        result = ip("netns", "pids", self.netns, check=False)
        return [int(pid) for pid in result.stdout.split()]

    def stop_sshd(self) -> None:
        """The host goes down: its sshd and everything its connections started are killed."""
        kill(self.processes())
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def add_user(
        self,
        user: str,
        sudo: str | None = None,
        client_key: str = "",
        entry_point: str = ENTRY_POINT,
    ) -> None:
        """An account ``user`` that the test's key logs in to; ``sudo``: ``"nopasswd"`` (the
        one rule fleet-host needs), ``"password"`` (the same rule, asking for a password) or
        None (no rule at all)."""
        home = f"/var/lib/{user}"  # below an overlay: /home is the machine's
        script = [
            f"id -u {user} >/dev/null 2>&1 || useradd -d {home} -m -s /bin/sh {user}",
            # a locked account ('!') is refused by an sshd without PAM
            f"usermod -p '*' {user}",
            f"mkdir -p {home}/.ssh",
            f"cp {client_key}.pub {home}/.ssh/authorized_keys",
            f"chown -R {user}: {home}/.ssh",
            f"chmod 0700 {home}/.ssh",
            f"rm -f /etc/sudoers.d/{user}",
        ]
        if sudo is not None:
            tag = "NOPASSWD: " if sudo == "nopasswd" else ""
            rule = f"{user} ALL=(root) {tag}{entry_point} fleet-host *"
            script += [
                f"echo '{rule}' > /etc/sudoers.d/{user}",
                f"chmod 0440 /etc/sudoers.d/{user}",
            ]
        self.run(" && ".join(script))


@dataclass
class TestHosts:
    """The hosts of one fixture, and what a controller needs to reach them: ``client_key``
    (the private key every host lets in), ``known_hosts`` (every host key pinned, under the
    host's name), ``ssh_config`` (an ssh_config with that key: pass it as ``-F``)."""

    __test__ = False

    suffix: str
    bridge: str
    controller: str
    directory: str
    client_key: str
    hosts: list[TestHost] = field(default_factory=list)

    def __iter__(self):
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, index):
        if isinstance(index, str):
            return next(host for host in self.hosts if host.name == index)
        return self.hosts[index]

    #: the hosts' entry point (``sudo -n ENTRY fleet-host ...``): this checkout's
    entry_point = ENTRY_POINT
    alive = staticmethod(lambda pid: alive(pid))

    @property
    def known_hosts(self) -> str:
        return os.path.join(self.directory, "known_hosts")

    @property
    def ssh_config(self) -> str:
        return os.path.join(self.directory, "ssh_config")

    def names(self) -> list[str]:
        """Every link and namespace this fixture created that still exists."""
        links = ip("-o", "link", "show", check=False).stdout
        namespaces = ip("netns", "list", check=False).stdout
        found = [
            word.split("@")[0].rstrip(":")
            for line in (links + namespaces).splitlines()
            for word in line.split()[:2]
        ]
        return sorted({name for name in found if name.startswith(f"srf{self.suffix}")})

    def close(self) -> None:
        for host in self.hosts:
            host.stop_sshd()
            for stream in (host.process.stdout, host.process.stderr):
                if stream:
                    stream.close()
        remove_objects(self.suffix)
        shutil.rmtree(self.directory, ignore_errors=True)
        try:
            os.unlink(os.path.join(REGISTRY, self.suffix))
        except FileNotFoundError:
            pass


def kill(pids: list[int]) -> None:
    """SIGKILL these pids (ours: they live in a namespace we made) until none is left; a
    zombie waiting for a parent that is also being killed counts as gone."""
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
        pids = [pid for pid in pids if alive(pid)]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def remove_objects(suffix: str) -> None:
    """Each veth (the pair goes with it), each namespace, then the bridge: an orphaned veth
    would make the next run's ``ip link add`` fail with "File exists"."""
    prefix = f"srf{suffix}"
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split()[1].split("@")[0].rstrip(":")
        if name.startswith(prefix) and not name.endswith("br"):
            ip("link", "del", name, check=False)
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0]
        if name.startswith(prefix):
            for pid in ip("netns", "pids", name, check=False).stdout.split():
                kill([int(pid)])
            ip("netns", "del", name, check=False)
    ip("link", "del", f"{prefix}br", check=False)


def clean_stale() -> None:
    """Remove what a killed run left: its registry entry names its suffix and its pid."""
    os.makedirs(REGISTRY, exist_ok=True)
    for suffix in os.listdir(REGISTRY):
        try:
            with open(os.path.join(REGISTRY, suffix)) as stream:
                owner = int(stream.read().strip() or 0)
        except (OSError, ValueError):
            owner = 0
        if owner and alive(owner):
            continue
        remove_objects(suffix)
        os.unlink(os.path.join(REGISTRY, suffix))


def free_subnet() -> ipaddress.IPv4Network:
    used = ip("-4", "-o", "addr", check=False).stdout + ip("-4", "route", check=False).stdout
    for _ in range(100):
        net = ipaddress.ip_network(f"10.77.{secrets.randbelow(150) + 100}.0/24")
        if f"10.77.{str(net.network_address).split('.')[2]}." not in used:
            return net
    raise RuntimeError("no free 10.77.X.0/24 subnet")


def make_fleet_hosts(
    count: int = 4,
    names: list[str] | None = None,
    subnet: str | None = None,
    addresses: dict[str, str] | None = None,
) -> TestHosts:
    """``count`` hosts named ``names`` (default host1...) at .11, .12... of ``subnet`` (default:
    a free 10.77.X.0/24), or exactly ``addresses`` (name -> address in one /24, as a model's
    hosts have them); the controller is .1 on the bridge. Call ``close()`` when done."""
    clean_stale()
    if addresses:
        names = list(addresses)
        subnet = str(ipaddress.ip_network(f"{next(iter(addresses.values()))}/24", strict=False))
    names = names or [f"host{i + 1}" for i in range(count)]
    net = ipaddress.ip_network(subnet) if subnet else free_subnet()
    if subnet and f"{str(net.network_address).rsplit('.', 1)[0]}." in (
        ip("-4", "-o", "addr", check=False).stdout
    ):
        raise RuntimeError(f"{net} is in use on this machine (another run's test hosts?)")
    suffix = secrets.token_hex(3)
    with open(os.path.join(REGISTRY, suffix), "w") as stream:
        stream.write(str(os.getpid()))
    directory = tempfile.mkdtemp(prefix=f"srf{suffix}-")
    controller = str(net.network_address + 1)
    fleet = TestHosts(
        suffix, f"srf{suffix}br", controller, directory, os.path.join(directory, "client_key")
    )
    try:
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "fleet-controller",
                "-f",
                fleet.client_key,
            ],
            check=True,
        )
        ip("link", "add", fleet.bridge, "type", "bridge")
        ip("addr", "add", f"{controller}/{net.prefixlen}", "dev", fleet.bridge)
        ip("link", "set", fleet.bridge, "up")
        for index, name in enumerate(names):
            address = (addresses or {}).get(name) or str(net.network_address + 11 + index)
            fleet.hosts.append(_start(fleet, index, name, address, net.prefixlen))
        for host in fleet.hosts:
            _wait_ready(host)
        with open(fleet.known_hosts, "w") as stream:
            stream.writelines(f"{host.name} {host.host_key}\n" for host in fleet.hosts)
        with open(fleet.ssh_config, "w") as stream:
            stream.write(f"IdentityFile {fleet.client_key}\nIdentitiesOnly yes\nUser root\n")
    except BaseException:
        fleet.close()
        raise
    return fleet


def _start(fleet: TestHosts, index: int, name: str, address: str, prefixlen: int) -> TestHost:
    netns, veth = f"srf{fleet.suffix}h{index}", f"srf{fleet.suffix}v{index}"
    ip("netns", "add", netns)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    ip("link", "set", veth, "master", fleet.bridge, "up")
    ip("-n", netns, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up")
    ip("-n", netns, "link", "set", "lo", "up")
    base = os.path.join(fleet.directory, name)
    os.makedirs(base)
    config = os.path.join(fleet.directory, f"{name}.sshd_config")
    with open(config, "w") as stream:
        stream.write(SSHD_CONFIG.format(address=address))
    overlays = []
    for number, directory in enumerate(d for d in OVERLAYS if os.path.isdir(d)):
        upper, work = f"{base}/{number}/upper", f"{base}/{number}/work"
        overlays.append(
            f"mkdir -p {upper} {work} && mount -t overlay overlay "
            f"-o lowerdir={directory},upperdir={upper},workdir={work} {directory}"
        )
    log = os.path.join(fleet.directory, f"{name}.sshd.log")
    script = SETUP.format(
        base=base,
        overlays="\n".join(overlays),
        name=name,
        client_key=fleet.client_key,
        sshd_config=config,
        log=log,
    )
    process = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return TestHost(name, address, netns, veth, process, log)


def _wait_ready(host: TestHost) -> None:
    """Ready when the host's sshd accepts a TCP connection on its address."""
    line = host.process.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"{host.name}: setup failed: {host.process.stderr.read()}")
    host.host_key = " ".join(host.read("/etc/ssh/ssh_host_ed25519_key.pub").split()[:2])
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", host.path("/etc/ssh/ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
        check=True,
    )
    host.fingerprint = listed.stdout.split()[1]
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((host.address, 22), timeout=1).close()
            return
        except OSError:
            if host.process.poll() is not None or time.monotonic() > deadline:
                with open(host.log) as stream:  # sshd's own words (a pipe nobody reads
                    log = stream.read()  # could fill up and stop it)
                raise RuntimeError(f"{host.name}: sshd did not start: {log}") from None
            time.sleep(0.005)


@pytest.fixture(scope="module")
@needs("sandbox", "daemon")
def fleet_hosts():
    """Four sshd hosts, host1..host4 (module scope: tests leave them as they found them, or
    use ``make_hosts`` for hosts of their own)."""
    fleet = make_fleet_hosts(4)
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
@needs("sandbox", "daemon")
def make_hosts():
    """``make_hosts(count, names=None, subnet=None, addresses=None)`` -> TestHosts, closed
    after the test."""
    made: list[TestHosts] = []

    def make(
        count: int = 4,
        names: list[str] | None = None,
        subnet: str | None = None,
        addresses: dict[str, str] | None = None,
    ):
        made.append(make_fleet_hosts(count, names, subnet, addresses))
        return made[-1]

    try:
        yield make
    finally:
        for fleet in made:
            fleet.close()
