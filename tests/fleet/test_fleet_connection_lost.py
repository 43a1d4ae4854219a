"""`fleet apply` when a connection goes away, and when the controller does (tests/support/
fleet_hosts.py, the System of tests/support/fleet_scenarios.py): a connection lost is reported
as one, whatever step it interrupts, within the bound docs/fleet-transport.md gives; a host lost
before its command ran is unreachable (it never counts as a failure); a failed preflight exits
1; the controller killed with -9 leaves no ssh process behind; the controller's own files that
cannot be read are one line, exit 1, before any host is tried; counts are singular when they
are 1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

from support.fleet_scenarios import MODEL, ROLES, System, lines, states
from support.paths import REPO

pytest_plugins = ["support.fleet_hosts"]
SYSTEM_RECIPES = os.path.join(os.path.dirname(sys.executable), "system-recipes")
#: docs/fleet-transport.md: "a host that stops answering is reported within 5 s"
LOST_WITHIN = 5.0


def slow_check(service: str, seconds: float) -> str:
    """A model's extra lines: the service's one check takes ``seconds``."""
    check = {"db": "check_db_config", "app": "check_app_config"}[service]
    return (
        f'\n[services.{service}.settings.{service}-nrpe]\nchecks = "{check} /usr/bin/sleep '
        f'{seconds:g}"\n'
    )


class Running:
    """A fleet command running in the background; its output lines with when they came."""

    def __init__(self, args: list[str]):
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.seen: list[tuple[float, str]] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.seen.append((time.monotonic(), line.rstrip("\n")))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, start: str, timeout: float = 60) -> float:
        """When a line starting with ``start`` came (waiting for it)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for when, line in self.seen:
                    if line.startswith(start):
                        return when
                left = deadline - time.monotonic()
                assert left > 0 and self.reader.is_alive(), self.text()
                self.changed.wait(left)

    def finish(self, timeout: float = 120):
        self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        assert self.process.stderr is not None
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, self.text(), self.process.stderr.read()
        )

    def text(self) -> str:
        return "".join(f"{line}\n" for _, line in self.seen)


def test_a_connection_lost_during_checks_is_reported_as_lost_within_seconds(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "lost", extra=slow_check("db", 20))
    run = Running(system.args("apply", "--confirm-timeout", "0"))
    run.wait_for("host1: checking")
    time.sleep(0.3)  # the check runs on the host
    subprocess.run(["ip", "link", "set", fleet["host1"].veth, "down"], check=True)
    cut = time.monotonic()  # its cable is cut: packets vanish, only the keep-alives notice
    reported = run.wait_for("host1: unreachable", timeout=30)
    result = run.finish()
    noticed = reported - cut
    print(f"a host cut off mid-check reported after {noticed:.1f} s")
    assert noticed < LOST_WITHIN, result.stdout
    address = fleet["host1"].address
    assert re.search(
        rf"^host1: unreachable: connection lost: Timeout, server {re.escape(address)} not "
        r"responding\. \([0-9.]+ s\)$",
        result.stdout,
        re.M,
    ), result.stdout
    assert "is not defined on the host" not in result.stdout
    # its apply ran and its checks were cut short: that counts as a failure (--max-fail 0)
    assert result.returncode == 4, result.stdout + result.stderr
    assert states(result) == {
        "host1": "unreachable",
        "host2": "not started",
        "host3": "not started",
        "host4": "not started",
    }
    assert re.search(
        r"^apply: 4 hosts, 1 unreachable, 3 not started, stopped: 1 lost during their apply, "
        r"more than --max-fail 0 \(",
        result.stdout,
        re.M,
    ), result.stdout


def test_a_host_lost_before_its_command_ran_is_unreachable_not_failed(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "before", extra=slow_check("db", 2))
    run = Running(system.args("apply", "--confirm-timeout", "0"))
    run.wait_for("host1: checking")  # host2 was planned in the preflight and waits for wave 2
    fleet["host2"].stop_sshd()
    result = run.finish()
    # nothing ran on host2: not a failure, so --max-fail 0 does not stop the run
    assert result.returncode == 3, result.stdout + result.stderr
    assert states(result) == {
        "host1": "changed",
        "host2": "unreachable",
        "host3": "not started",  # host2's app instance counts as down (max-unavailable 1)
        "host4": "changed",
    }
    assert f"host2: unreachable: connection lost: Connection to {fleet['host2'].address} " in (
        result.stdout
    )
    assert "stopped" not in lines(result)[-3]


def test_a_failed_preflight_exits_1_and_changes_nothing(make_hosts, tmp_path):
    fleet = make_hosts(4)
    db = fleet["host1"]
    db.add_user("deploy", sudo="password", client_key=fleet.client_key)
    with open(fleet.ssh_config) as stream:
        config = stream.read()
    with open(fleet.ssh_config, "w") as stream:  # host1's sudo wants a password: its plan fails
        stream.write(f"Host {db.address}\n    User deploy\nHost *\n{config}")
    system = System(tmp_path, fleet, "preflight")
    apply = system.fleet_command("apply")
    assert apply.returncode == 1, apply.stdout + apply.stderr
    assert states(apply) == {
        "host1": "failed",
        "host2": "not started",
        "host3": "not started",
        "host4": "not started",
    }
    assert re.search(
        r"^apply: 4 hosts, 1 failed, 3 not started, stopped: .*exit 1;", apply.stdout, re.M
    )
    assert not any(host.exists("/etc/system-recipes/preflight/host.cfg") for host in fleet)


def ssh_children(pid: int) -> list[tuple[int, list[str]]]:
    """The ssh processes ``pid`` started: (pid, argv)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stream:
                parent = int(stream.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                argv = [word.decode() for word in stream.read().split(b"\0") if word]
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and argv and os.path.basename(argv[0]) == "ssh":
            found.append((int(entry), argv))
    return found


def naming(mark: str) -> list[int]:
    """Every process whose command line names ``mark`` (the run's socket directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                if mark.encode() in stream.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_the_controller_killed_leaves_no_ssh_process_behind(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "killed", extra=slow_check("db", 10))
    run = Running(system.args("apply", "--confirm-timeout", "0"))
    run.wait_for("host1: checking")
    time.sleep(0.3)
    children = ssh_children(run.process.pid)
    sockets = {os.path.dirname(argv[argv.index("-S") + 1]) for _, argv in children if "-S" in argv}
    assert len(sockets) == 1, children  # one socket directory for the run
    directory = sockets.pop() + "/"
    assert len(naming(directory)) >= 5  # 4 masters and the check's client at least
    run.process.kill()
    killed = time.monotonic()
    run.finish()
    try:
        while (naming(directory) or os.path.exists(directory)) and time.monotonic() - killed < 3:
            time.sleep(0.05)
        left = naming(directory)
        assert left == [], f"still running {time.monotonic() - killed:.1f} s after kill -9: {left}"
        assert not os.path.exists(directory)
    finally:  # this run's own processes only
        for pid in naming(directory):
            os.kill(pid, signal.SIGKILL)


def test_a_count_of_one_is_singular(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "one")
    assert system.fleet_command("apply").returncode == 0
    system.edit(
        'role = "roles/app.cfg"\n',
        'role = "roles/app.cfg"\nsettings = { app-config = { greeting = "bonjour" } }\n',
    )
    plan = system.fleet_command("plan")
    assert re.search(r"^host2: pending: 1 file change \([0-9.]+ s\)$", plan.stdout, re.M), (
        plan.stdout
    )
    apply = system.fleet_command("apply", "--confirm-timeout", "0")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert "\nhost2: waiting: 1 change\n" in apply.stdout, apply.stdout
    assert re.search(r"^host2: changed: 1 file \([0-9.]+ s\)$", apply.stdout, re.M)


def compiled_model(tmp_path) -> str:
    """A compiled model whose hosts are never reached (TEST-NET addresses)."""
    profiles = tmp_path / "profiles"
    system = MODEL.format(
        name="x", profiles=profiles, **{f"host{i}": f"192.0.2.{i}" for i in range(1, 5)}
    )
    (profiles / "roles").mkdir(parents=True)
    (profiles / "base.cfg").write_text(open(os.path.join(REPO, "profiles", "base.cfg")).read())
    for role, text in ROLES.items():
        (profiles / "roles" / f"{role}.cfg").write_text(text)
    (tmp_path / "x.toml").write_text(system)
    compiled = subprocess.run(
        [
            SYSTEM_RECIPES,
            "fleet",
            "compile",
            "-m",
            str(tmp_path / "x.toml"),
            "--profiles",
            str(profiles),
        ],
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stderr
    return str(tmp_path / "x.toml")


def test_a_controller_file_that_cannot_be_read_is_one_line_before_any_host(tmp_path):
    model = compiled_model(tmp_path)
    profiles = str(tmp_path / "profiles")

    def fleet(action: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [SYSTEM_RECIPES, "fleet", action, "-m", model, "--profiles", profiles, *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )

    missing = fleet("plan", "-F", "/missing/ssh_config")
    assert missing.returncode == 1 and missing.stdout == "", missing.stdout
    assert missing.stderr == (
        "Error: -F /missing/ssh_config: cannot read the ssh_config (No such file or "
        "directory); no host was tried\n"
    )
    broken = tmp_path / "broken_config"
    broken.write_text("Hots *\n")
    bad = fleet("apply", "-F", str(broken))
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith(f"Error: -F {broken}: ") and len(bad.stderr.splitlines()) == 1
    assert "Bad configuration option: hots" in bad.stderr and "no host was tried" in bad.stderr
    identity = tmp_path / "ssh_config"
    identity.write_text("IdentityFile /missing/key\n")
    key = fleet("status", "-F", str(identity))
    assert key.returncode == 1 and key.stdout == ""
    assert key.stderr == (
        "Error: /missing/key: cannot read the identity file host1 is reached with (No such "
        f"file or directory; IdentityFile in -F {identity}); no host was tried\n"
    )
    explicit = tmp_path / "explicit_config"  # named explicitly: its default name changes nothing
    explicit.write_text(
        "IdentityFile none\nIdentityFile %d/.ssh/%h\nIdentityFile ~/.ssh/id_ed25519_missing\n"
    )
    named = fleet("plan", "-F", str(explicit))
    assert named.returncode == 1 and named.stderr.startswith(
        "Error: ~/.ssh/id_ed25519_missing: cannot read the identity file host1 is reached with"
    ), named.stderr
    (tmp_path / "x.known_hosts").mkdir()  # a directory where the pinned keys are expected
    pinned = fleet("plan")
    assert pinned.returncode == 1 and pinned.stdout == ""
    assert pinned.stderr == (
        f"Error: {tmp_path}/x.known_hosts: cannot read the pinned host keys (Is a directory); "
        "no host was tried\n"
    )
    assert not (tmp_path / ".fleet").exists()  # not even a run directory


def test_fleet_trust_with_an_ssh_config_that_cannot_be_read_is_one_line(tmp_path):
    model = compiled_model(tmp_path)
    fingerprint = "SHA256:" + "A" * 43

    def trust(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [SYSTEM_RECIPES, "fleet", "trust", "host1", "--fingerprint", fingerprint, "-m", model]
            + ["--timeout", "1", *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )

    missing = trust("-F", "/missing/ssh_config")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        "Error: -F /missing/ssh_config: cannot read the ssh_config (No such file or "
        "directory); nothing was trusted\n"
    )
    broken = tmp_path / "broken_config"
    broken.write_text("Hots *\n")
    bad = trust("-F", str(broken))
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith(f"Error: -F {broken}: ssh -G 192.0.2.1: {broken}: line 1: Bad ")
    assert not (tmp_path / "x.known_hosts").exists()


def test_fleet_export_of_one_host_is_singular(tmp_path):
    profiles = tmp_path / "profiles"
    (profiles / "roles").mkdir(parents=True)
    (profiles / "base.cfg").write_text(open(os.path.join(REPO, "profiles", "base.cfg")).read())
    (profiles / "roles" / "db.cfg").write_text(ROLES["db"])
    model = tmp_path / "one.toml"
    model.write_text(
        f'[system]\nname = "one"\nprofiles = "{profiles}"\n\n'
        '[hosts.host1]\naddress = "192.0.2.1"\nmemory = "1G"\n\n'
        '[services.db]\nrole = "roles/db.cfg"\nport = 5400\nport-option = "db-config:port"\n'
    )
    (tmp_path / "one.known_hosts").write_text("host1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n")
    base = [SYSTEM_RECIPES, "fleet", "-", "-m", str(model), "--profiles", str(profiles)]
    compiled = subprocess.run(base[:2] + ["compile"] + base[3:], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    exported = subprocess.run(
        base[:2] + ["export", "ansible", str(tmp_path / "out")] + base[3:],
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    assert f"{tmp_path / 'out'}: 1 host in 1 wave, revision 1: " in exported.stdout
