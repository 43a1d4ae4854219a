"""The fleet's transport on real sshd hosts (network namespaces on a bridge, tests/support/fleet_hosts.py):
one control master per host, pinned host keys, `fleet trust`, sudo, dead hosts -- every failure
one line naming the host."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from system_recipes.fleet.controller.transport import Connections, Target, TransportError

pytest_plugins = ["support.fleet_hosts"]
SYSTEM_RECIPES = os.path.join(os.path.dirname(sys.executable), "system-recipes")


def connections(fleet, known_hosts=None, **kwargs) -> Connections:
    return Connections(
        known_hosts or fleet.known_hosts,
        config=fleet.ssh_config,
        entry_point=fleet.entry_point,
        **kwargs,
    )


def test_hosts_come_up_in_seconds_and_teardown_leaves_nothing_behind(make_hosts):
    started = time.monotonic()
    fleet = make_hosts(4)
    up = time.monotonic() - started
    try:
        assert up < 5, up
        assert len(fleet.names()) == 9  # the bridge, 4 veths, 4 namespaces
        # a connection with a command still running: per-connection sshd children and the
        # command's own processes must go too
        with connections(fleet) as ssh:
            connection = ssh.open(Target("host1", fleet[0].address))
            sleeper = subprocess.Popen(
                ["ssh", *connection.args, "-o", "ControlMaster=no", fleet[0].address, "sleep 600"],
                stdin=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 5
            while len(fleet[0].processes()) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            started_there = fleet[0].processes() + [host.pid for host in fleet]
            assert len(started_there) >= 7
            fleet.close()  # as a failing test's teardown would: while everything runs
            sleeper.wait(timeout=10)
    finally:
        fleet.close()
    assert fleet.names() == []
    assert not any(fleet.alive(pid) for pid in started_there)
    assert not os.path.exists(fleet.directory)


def test_a_run_killed_before_its_teardown_is_cleaned_up_by_the_next(make_hosts):
    fleet = make_hosts(1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(os.path.join("/tmp/sr-fleet-hosts", fleet.suffix), "w") as stream:
        stream.write(str(dead.pid))  # as if the owner had been killed
    listener = fleet[0].pid
    other = make_hosts(1)
    assert fleet.names() == []
    fleet[0].process.wait(timeout=5)
    assert not fleet.alive(listener)
    assert len(other.names()) == 3


def test_every_host_answers_through_its_control_master(fleet_hosts):
    with connections(fleet_hosts) as ssh:
        for host in fleet_hosts:
            ssh.open(Target(host.name, host.address))
        paths = [c.control_path for c in ssh.connections.values()]
        assert all(os.path.dirname(p) == ssh.directory for p in paths)
        assert all(len(p) < 100 for p in paths)
        assert oct(os.stat(ssh.directory).st_mode & 0o777) == "0o700"
        timings = []
        for host in fleet_hosts:
            connection = ssh.connections[host.name]
            assert connection.raw("hostname").text == [host.name]
            started = time.monotonic()
            for _ in range(5):
                assert connection.raw("true").code == 0
            timings.append((time.monotonic() - started) / 5)
            result = connection.run("status")
            assert result.code == 0, result.stderr
            assert result.last["step"] == "done" and result.last["exit"] == 0
        # a command over an open master is one round trip, not a new ssh connection
        assert max(timings) < 0.5, timings
        masters = [c.master for c in ssh.connections.values()]
        watcher = ssh.watcher  # the watchdog that ends the masters if this process is killed
        assert watcher is not None and watcher.poll() is None
    assert masters and not any(fleet_hosts.alive(master.pid) for master in masters)
    assert not os.path.exists(ssh.directory)
    assert watcher.returncode == 0 and ssh.watcher is None  # it ended with the run


def test_a_host_key_mismatch_is_refused_in_one_line(fleet_hosts, tmp_path):
    pinned = tmp_path / "shop.known_hosts"
    pinned.write_text(f"host2 {fleet_hosts[0].host_key}\n")  # host1's key, pinned for host2
    with connections(fleet_hosts, str(pinned)) as ssh:
        with pytest.raises(TransportError) as mismatch:
            ssh.open(Target("host2", fleet_hosts[1].address))
        with pytest.raises(TransportError) as unknown:
            ssh.open(Target("host3", fleet_hosts[2].address))
    line = str(mismatch.value)
    assert "\n" not in line
    assert line.startswith(
        f"host2: ({fleet_hosts[1].address}:22) host key mismatch: the host "
        f"offers {fleet_hosts[1].fingerprint}, not the key pinned for host2 "
        f"in {pinned}"
    )
    assert str(unknown.value).startswith(
        f"host3: ({fleet_hosts[2].address}:22) no host key "
        f"pinned for host3 in {pinned} (nothing is trusted"
    )
    assert pinned.read_text() == f"host2 {fleet_hosts[0].host_key}\n"  # ssh added nothing


def write_model(tmp_path, fleet) -> str:
    hosts = "".join(f'[hosts.{h.name}]\naddress = "{h.address}"\nmemory = "1G"\n\n' for h in fleet)
    path = tmp_path / "shop.toml"
    path.write_text(f'[system]\nname = "shop"\nprofiles = "/opt/shop/profiles"\n\n{hosts}')
    return str(path)


def trust(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_RECIPES, "fleet", "trust", *args], capture_output=True, text=True)


def test_fleet_trust_pins_a_key_only_with_its_fingerprint(fleet_hosts, tmp_path):
    model = write_model(tmp_path, fleet_hosts)
    pinned = tmp_path / "shop.known_hosts"
    host = fleet_hosts[2]
    wrong = fleet_hosts[0].fingerprint
    refused = trust("host3", "--fingerprint", wrong, "-m", model)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == (
        f"Error: [hosts.host3] fingerprint: {host.address} offers "
        f"{host.fingerprint} (ED25519), not {wrong}; nothing was trusted "
        "(expected the fingerprint of a key the host offers, read on the "
        "host itself)\n"
    )
    assert not pinned.exists()
    malformed = trust("host3", "--fingerprint", "MD5:aa:bb", "-m", model)
    assert malformed.returncode == 1 and len(malformed.stderr.splitlines()) == 1
    assert "[hosts.host3] fingerprint: 'MD5:aa:bb' is not a SHA256 fingerprint" in malformed.stderr
    unknown = trust("host9", "--fingerprint", host.fingerprint, "-m", model)
    assert unknown.stderr.startswith("Error: [hosts]: 'host9' is not a host of the model")

    pinned.write_text("host3 ssh-ed25519 AAAAstale\nhost1 ssh-ed25519 AAAAother\n")
    accepted = trust("host3", "--fingerprint", host.fingerprint, "-m", model)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == f"host3: pinned {host.fingerprint} (ED25519) in {pinned}\n"
    assert pinned.read_text() == (
        f"host1 ssh-ed25519 AAAAother\nhost3 {host.host_key}\n"
    )  # the stale key is replaced
    with connections(fleet_hosts, str(pinned)) as ssh:
        assert ssh.open(Target("host3", host.address)).raw("hostname").text == ["host3"]


@pytest.mark.parametrize("rule", ["password", None])
def test_sudo_that_wants_a_password_is_one_line_naming_the_rule(fleet_hosts, rule):
    host = fleet_hosts[1]
    host.add_user("deploy", sudo=rule, client_key=fleet_hosts.client_key)
    with connections(fleet_hosts) as ssh:
        connection = ssh.open(Target(host.name, host.address, user="deploy"))
        assert connection.sudo and connection.user == "deploy"
        with pytest.raises(TransportError) as refused:
            connection.run("status")
    assert str(refused.value) == (
        f"host2: sudo wants a password for deploy; fleet-host needs this rule in "
        f"/etc/sudoers.d: deploy ALL=(root) NOPASSWD: {fleet_hosts.entry_point} fleet-host *"
    )


def test_sudo_with_the_rule_runs_fleet_host_as_root(fleet_hosts):
    host = fleet_hosts[1]
    host.add_user("deploy", sudo="nopasswd", client_key=fleet_hosts.client_key)
    with connections(fleet_hosts) as ssh:
        connection = ssh.open(Target(host.name, host.address, user="deploy"))
        assert (
            connection.remote_command("status")
            == f"sudo -n {fleet_hosts.entry_point} fleet-host status"
        )
        result = connection.run("status")
        assert result.code == 0, result.stderr
        # anything else is not allowed by the rule
        assert connection.raw("sudo -n id -u").code == 1


def test_a_host_that_goes_down_fails_within_seconds_in_one_line(make_hosts):
    fleet = make_hosts(2)
    # the default keep-alives: docs/fleet-transport.md says "within 5 s"
    with connections(fleet, connect_timeout=2) as ssh:
        stopped = ssh.open(Target("host1", fleet[0].address))
        cut = ssh.open(Target("host2", fleet[1].address))
        fleet[0].stop_sshd()  # its sshd is gone: the connection is refused
        started = time.monotonic()
        with pytest.raises(TransportError) as down:
            stopped.run("status")
        assert time.monotonic() - started < 3
        # the master notices (the connection was closed): a command goes through it or not
        # at all, never through a new connection of its own
        lost = f"host1: connection lost: Connection to {fleet[0].address} closed by remote host."
        assert str(down.value) == lost
        with pytest.raises(TransportError) as later:  # and so does every later command
            stopped.raw("true")
        assert str(later.value) == lost and later.value.unreachable == "before"
        with pytest.raises(TransportError) as again:
            ssh.open(Target("host1", fleet[0].address))
        assert str(again.value) == (
            f"host1: ({fleet[0].address}:22) ssh: "
            f"connect to host {fleet[0].address} port 22: "
            "Connection refused"
        )
        # its cable is cut: packets vanish, the keep-alives notice
        subprocess.run(["ip", "link", "set", fleet[1].veth, "down"], check=True)
        started = time.monotonic()
        with pytest.raises(TransportError) as silent:
            cut.run("status", timeout=30)
        assert time.monotonic() - started < 5
        assert silent.value.unreachable == "during"
        assert str(silent.value) == (
            f"host2: connection lost: Timeout, server {fleet[1].address} not responding."
        )


def test_hosts_at_the_addresses_of_a_model(make_hosts):
    fleet = make_hosts(addresses={"lb1": "10.77.0.10", "app1": "10.77.0.11"})
    assert [(h.name, h.address) for h in fleet] == [("lb1", "10.77.0.10"), ("app1", "10.77.0.11")]
    assert fleet.controller == "10.77.0.1"
    with connections(fleet) as ssh:
        assert ssh.open(Target("lb1", "10.77.0.10")).raw("hostname").text == ["lb1"]


def test_commands_go_through_a_master_reached_by_proxyjump(make_hosts, tmp_path):
    """A command's client names the master's socket by its expanded path: %C hashes the
    ProxyJump, which the client's ProxyCommand=false (no connection behind the master's back)
    would otherwise change."""
    fleet = make_hosts(2)
    jump, host = fleet[0], fleet[1]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host jump\n    HostName {jump.address}\n    UserKnownHostsFile {fleet.known_hosts}\n"
        "    HostKeyAlias host1\n    StrictHostKeyChecking yes\n    BatchMode yes\n"
        f"Host {host.address}\n    ProxyJump jump\n"
        f"Host *\n    IdentityFile {fleet.client_key}\n    IdentitiesOnly yes\n    User root\n"
    )
    with Connections(fleet.known_hosts, config=str(config), entry_point=fleet.entry_point) as ssh:
        connection = ssh.open(Target("host2", host.address))
        came_from = connection.raw("echo $SSH_CONNECTION").text
        assert came_from and came_from[0].split()[0] == jump.address  # through the jump host
        assert connection.raw("hostname").text == ["host2"]
        result = connection.run("status")
        assert result.code == 0, result.stderr
