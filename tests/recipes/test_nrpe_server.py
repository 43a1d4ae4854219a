"""nrpe-server (allowed_hosts) against a real NRPE inside the sandbox: a listed address is
answered, another is refused, a host taken out is refused after the run; bad input."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from support.markers import needs
from support.results import ok, one_error_line, snapshot

CHECK_NRPE = "/usr/lib/nagios/plugins/check_nrpe"
INCLUDE = "/etc/nagios/nrpe.d"

PROFILE = """
[buildout]
extends = {base}
parts = monitoring-access

[monitoring-access]
recipe = system_recipes:nrpe-server
allowed-hosts = %s
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nrpe_pid(sandbox) -> int | None:
    try:
        return int(sandbox.read("/run/nagios/nrpe.pid").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def answered(host, source: str) -> bool:
    """check_nrpe from ``source`` (-b binds the client's address; the whole of 127/8 is on lo):
    True when NRPE answers with its version, False when it drops the connection."""
    result = host.sandbox.run(
        [CHECK_NRPE, "-H", "127.0.0.1", "-p", str(host.port), "-b", source], timeout=30
    )
    if result.returncode == 0 and result.stdout.startswith("NRPE v"):
        return True
    assert result.returncode != 0, result.stdout
    return False


@pytest.fixture
@needs("sandbox", "daemon")
def live(host):
    port = free_port()
    host.sandbox.run(
        f"sed -i 's/^server_port=.*/server_port={port}/' /etc/nagios/nrpe.cfg && "
        "install -d -o nagios -g nagios /run/nagios",
        check=True,
    )
    host.port = port
    yield host
    pid = nrpe_pid(host.sandbox)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def wait_answer(host, source: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", host.port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("NRPE does not listen")


def test_only_the_monitoring_host_and_loopback_are_answered(live):
    host = live
    host.write(PROFILE % "127.0.0.2")
    out = ok(host.buildout()).stdout
    assert "nrpe-restart (nagios-nrpe-server) skipped (not running" in out, out
    assert (
        host.read(f"{INCLUDE}/monitoring-access.cfg").splitlines()[-1] == "allowed_hosts=127.0.0.2"
    )
    host.sandbox.run(["/usr/sbin/nrpe", "-c", "/etc/nagios/nrpe.cfg", "-d"], check=True)
    wait_answer(host, "127.0.0.1")
    pid = nrpe_pid(host.sandbox)
    # the monitoring host, and nrpe.cfg's loopback (NRPE adds the lines up); nothing else
    assert answered(host, "127.0.0.2")
    assert answered(host, "127.0.0.1")
    assert not answered(host, "127.0.0.3")

    # the monitoring host moves: after the run the old one is refused (a SIGHUP would keep it)
    host.write(PROFILE % "127.0.0.3")
    out = ok(host.buildout()).stdout
    assert "reloads: nrpe-restart (nagios-nrpe-server)" in out, out
    assert f"restarted nagios-nrpe-server (pid {pid} -> " in out, out
    wait_answer(host, "127.0.0.1")
    assert answered(host, "127.0.0.3")
    assert not answered(host, "127.0.0.2")

    # a no-op run restarts nothing
    out = ok(host.buildout()).stdout
    assert "system-recipes: nothing to do: " in out, out  # the fast path
    out = ok(host.buildout("system-recipes:fast-path=off")).stdout  # a full run
    assert "reloads: none" in out, out

    # dropping the part takes the monitoring host out too
    host.write("[buildout]\nextends = {base}\nparts =\n")
    out = ok(host.buildout()).stdout
    assert not host.exists(f"{INCLUDE}/monitoring-access.cfg")
    wait_answer(host, "127.0.0.1")
    assert not answered(host, "127.0.0.3")
    assert answered(host, "127.0.0.1")


def test_another_file_allowing_more_hosts_is_refused(host):
    host.sandbox.run(f"echo 'allowed_hosts=10.9.9.9' > {INCLUDE}/local.cfg", check=True)
    host.write(PROFILE % "10.77.0.5")
    before = snapshot(host, "/etc/nagios")
    one_error_line(
        host.buildout(),
        "[monitoring-access]",
        f"{INCLUDE}/local.cfg also allows 10.9.9.9 (NRPE adds up",
    )
    assert snapshot(host, "/etc/nagios") == before


def test_an_nrpe_cfg_without_the_include_directory_is_refused(host):
    host.sandbox.run("sed -i 's|^include_dir=|#include_dir=|' /etc/nagios/nrpe.cfg", check=True)
    host.write(PROFILE % "10.77.0.5")
    one_error_line(
        host.buildout(),
        "[monitoring-access]",
        f"/etc/nagios/nrpe.cfg does not include {INCLUDE}/monitoring-access.cfg",
    )


@pytest.mark.parametrize(
    "value, fragments",
    [
        ("10.77.0.5/24", ("[monitoring-access] allowed-hosts:", "has host bits set")),
        ("10.77.0.5;id", ("[monitoring-access] allowed-hosts:", "is not an address, a network")),
        ("10.77.0.5, 10.77.0.5", ("[monitoring-access] allowed-hosts:", "given twice")),
        (",", ("[monitoring-access] allowed-hosts:", "no host")),
        ("", ("[monitoring-access] allowed-hosts:", "missing required option")),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(host, value, fragments):
    text = PROFILE % value if value else PROFILE.replace("allowed-hosts = %s\n", "")
    host.write(text)
    before = snapshot(host, "/etc/nagios")
    one_error_line(host.buildout(), *fragments)
    assert snapshot(host, "/etc/nagios") == before


def test_addresses_networks_and_names_one_per_line_or_separated(scratch):
    os.makedirs(os.path.join(scratch.root, "etc/nagios/nrpe.d"))
    with open(os.path.join(scratch.root, "etc/nagios/nrpe.cfg"), "w") as stream:
        stream.write("allowed_hosts=127.0.0.1,::1\ninclude_dir=/etc/nagios/nrpe.d/\n")
    scratch.write("""
        [buildout]
        extends = {base}
        parts = monitoring-access

        [system-recipes]
        root = {root}

        [monitoring-access]
        recipe = system_recipes:nrpe-server
        allowed-hosts =
            10.77.0.5, 10.78.0.0/16
            nagios.example.com 2001:db8::1
        """)
    ok(scratch.buildout())
    with open(os.path.join(scratch.root, "etc/nagios/nrpe.d/monitoring-access.cfg")) as stream:
        assert stream.read().splitlines()[-1] == (
            "allowed_hosts=10.77.0.5,10.78.0.0/16,nagios.example.com,2001:db8::1"
        )
