"""`system-recipes fleet-host plan|apply|status` on real sshd hosts, reached through the fleet
transport: the host.cfg on stdin converges and is recorded, a second apply is a no-op, a stale
revision is refused, drift shows in status, packages go through the host's own apt-get."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import pytest
from support.paths import BASE_CFG

from system_recipes.fleet.controller.transport import Connections, Target
from system_recipes.fleet.host.installs import Packages

pytest_plugins = ["support.fleet_hosts"]

HOST_CFG = """\
[buildout]
extends = %(base)s
parts = %(user)s %(user)s-config

[%(user)s]
recipe = system_recipes:deployment

[%(user)s-config]
recipe = system_recipes:template
path = ${%(user)s:etc-directory}/app.ini
text =
    [server]
    port = {{ port }}
port = %(port)s
"""


@pytest.fixture(scope="module")
def ssh(fleet_hosts):
    with Connections(
        fleet_hosts.known_hosts, config=fleet_hosts.ssh_config, entry_point=fleet_hosts.entry_point
    ) as connections:
        for host in fleet_hosts:
            connections.open(Target(host.name, host.address))
        yield connections.connections


def payload(
    model: str,
    revision: int,
    port: int = 8080,
    packages: dict | None = None,
    user: str | None = None,
) -> str:
    header = {
        "model": model,
        "revision": revision,
        "digest": f"sha256:{model}{revision}",
        "host": "host1",
        "packages": packages or {},
    }
    return (
        json.dumps(header)
        + "\n"
        + HOST_CFG % {"base": BASE_CFG, "user": user or model, "port": port}
    )


def steps(result) -> dict:
    return {event["step"]: event for event in result.events}


def test_apply_converges_records_and_a_second_apply_is_a_no_op(ssh, fleet_hosts):
    host, connection = fleet_hosts[0], ssh["host1"]
    first = connection.run("apply", payload("web", 3))
    assert first.code == 0, first.stderr
    assert [e["step"] for e in first.events] == [
        "revision",
        "packages",
        "config",
        "plan",
        "buildout",
        "record",
        "done",
    ]
    done = first.last
    assert done["result"] == "changed" and done["changed"] == 7 and done["exit"] == 0
    assert host.read("/etc/web/app.ini") == "[server]\nport = 8080\n"
    assert host.read("/etc/system-recipes/web/host.cfg") == payload("web", 3).split("\n", 1)[1]
    record = json.loads(host.read("/var/lib/system-recipes/fleet/web.json"))
    assert record["applied"]["revision"] == 3 and record["applied"]["digest"] == "sha256:web3"
    assert record["last"]["result"] == "ok" and record["applied"]["changed"] == 7
    assert record["applied"]["config_sha256"] == steps(first)["config"]["sha256"]

    before = os.stat(host.path("/etc/web/app.ini"))
    state = os.stat(host.path("/var/lib/system-recipes/fleet/web.json"))
    again = connection.run("apply", payload("web", 3))
    assert again.code == 0 and again.last["result"] == "ok" and again.last["changed"] == 0
    # the first apply's buildout ran through `converge`, whose clean run left the fast path's
    # record: the same host.cfg is neither planned nor run again
    assert "fast_path" in steps(again)["plan"], again.events
    assert steps(again)["buildout"]["result"] == "unchanged"
    assert steps(again)["record"]["result"] == "unchanged"
    after = os.stat(host.path("/etc/web/app.ini"))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (
        os.stat(host.path("/var/lib/system-recipes/fleet/web.json")).st_mtime_ns
        == state.st_mtime_ns
    )
    plan = connection.run("plan", payload("web", 3))
    assert plan.code == 0 and plan.last["result"] == "ok"
    assert "fast_path" in steps(plan)["plan"], plan.events
    # a hand edit is seen (the record's lstat differs): a full plan, which finds the drift
    host.run("echo '# by hand' >> /etc/web/app.ini")
    drifted = connection.run("plan", payload("web", 3))
    assert drifted.code == 2 and "fast_path" not in steps(drifted)["plan"], drifted.events
    assert steps(drifted)["plan"]["drift"] == ["/etc/web/app.ini"], drifted.events
    host.run("sed -i '/# by hand/d' /etc/web/app.ini")

    status = connection.run("status", arguments=["web"])
    assert status.code == 0
    assert steps(status)["status"]["result"] == "in-sync"
    assert steps(status)["status"]["applied"]["revision"] == 3


def test_a_stale_revision_is_refused_unless_forced(ssh, fleet_hosts):
    connection = ssh["host2"]
    assert connection.run("apply", payload("stale", 5)).code == 0
    refused = connection.run("apply", payload("stale", 4, port=9090))
    assert refused.code == 1
    assert refused.events[0] == {
        "step": "revision",
        "result": "refused",
        "error": (refused.events[0]["error"]),
    }
    assert refused.events[0]["error"].startswith(
        "revision 4 of stale is older than revision 5, applied "
    )
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("Error: revision 4")
    assert "port = 8080" in fleet_hosts[1].read("/etc/stale/app.ini")
    planned = connection.run("plan", payload("stale", 4, port=9090))
    assert planned.code == 1 and planned.last["result"] == "refused"
    forced = connection.run("apply", payload("stale", 4, port=9090), arguments=["--force"])
    assert forced.code == 0 and forced.last["changed"] == 1
    assert "port = 9090" in fleet_hosts[1].read("/etc/stale/app.ini")


def test_plan_shows_changes_and_status_shows_drift(ssh, fleet_hosts):
    host, connection = fleet_hosts[2], ssh["host3"]
    assert connection.run("status", arguments=["drift"]).code == 2  # never applied
    plan = connection.run("plan", payload("drift", 1))
    assert plan.code == 2 and plan.last["result"] == "pending"
    assert "create /etc/drift/app.ini" in steps(plan)["plan"]["actions"]
    assert not host.exists("/etc/drift/app.ini")  # a plan changes nothing
    assert not host.exists("/etc/system-recipes/drift/host.cfg")
    assert connection.run("apply", payload("drift", 1)).code == 0
    with open(host.path("/etc/drift/app.ini"), "a") as stream:
        stream.write("# edited by hand\n")
    status = connection.run("status", arguments=["drift"])
    assert status.code == 2
    assert steps(status)["status"]["result"] == "drifted"
    assert steps(status)["status"]["drift"] == ["/etc/drift/app.ini"]
    everything = connection.run("status")
    assert everything.code == 2 and everything.last["models"] == ["drift"]


def test_a_failed_plan_keeps_the_applied_config_and_records_the_failure(ssh, fleet_hosts):
    host, connection = fleet_hosts[3], ssh["host4"]
    assert connection.run("apply", payload("bad", 1)).code == 0
    kept = host.read("/etc/system-recipes/bad/host.cfg")
    broken = payload("bad", 2).replace("port = {{ port }}", "port = {{ prot }}")
    result = connection.run("apply", broken)
    assert result.code == 1
    assert steps(result)["plan"]["result"] == "error"
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: [bad-config]")
    assert host.read("/etc/system-recipes/bad/host.cfg") == kept
    assert not host.exists("/etc/system-recipes/bad/.host.cfg.new")
    record = json.loads(host.read("/var/lib/system-recipes/fleet/bad.json"))
    assert record["applied"]["revision"] == 1
    assert record["last"]["revision"] == 2 and record["last"]["result"] == "failed"
    assert record["last"]["error"].startswith("[bad-config]")


@pytest.mark.parametrize(
    "stdin, message",
    [
        ("", "the first line is not JSON"),
        ('{"model": "Shop", "revision": 1, "digest": ""}\n[buildout]\n', "model: 'Shop'"),
        ('{"model": "s", "revision": -1, "digest": ""}\n[buildout]\n', "header: revision: '-1'"),
        ('{"model": "s", "revison": 1}\n[buildout]\n', "header: unknown key 'revison'"),
        ('{"model": "s", "revision": 1, "digest": ""}\n', "no host.cfg after the header"),
        (
            '{"model": "s", "revision": 1, "digest": "", "packages": {"a": "1 && rm"}}\n[b]\n',
            "header: packages:",
        ),
    ],
)
def test_bad_input_is_one_line(ssh, stdin, message):
    result = ssh["host1"].run("apply", stdin)
    assert result.code == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.last == {
        "step": "done",
        "result": "error",
        "exit": 1,
        "seconds": result.last["seconds"],
    }


def test_one_fleet_host_at_a_time_per_model(ssh, fleet_hosts):
    host = fleet_hosts[0]
    directory = host.path("/var/lib/system-recipes/fleet")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".busy.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = ssh["host1"].run("apply", payload("busy", 1))
    assert result.code == 1
    assert "another fleet-host is running for busy on this host" in result.stderr


def installed_version(host, package: str) -> str:
    return host.run(["dpkg-query", "-W", "-f", "${Version}", package]).stdout


def test_packages_go_through_the_hosts_apt_get(ssh, fleet_hosts):
    host, connection = fleet_hosts[1], ssh["host2"]
    have = installed_version(host, "passwd")
    ok = connection.run("plan", payload("pkg", 1, packages={"passwd": have}))
    assert steps(ok)["packages"] == {
        "step": "packages",
        "result": "ok",
        "manager": "apt-get",
        "pending": [],
    }
    missing = {"passwd": "0.0-0"}
    pending = connection.run("plan", payload("pkg", 1, packages=missing))
    assert pending.code == 2 and steps(pending)["packages"]["pending"] == ["passwd=0.0-0"]
    failed = connection.run("apply", payload("pkg", 1, packages=missing))
    assert failed.code == 1
    assert steps(failed)["packages"]["error"] == (
        "apt-get failed (exit 100): E: Version '0.0-0' for 'passwd' was not found"
    )
    assert not host.exists("/etc/system-recipes/pkg/host.cfg")  # nothing past the packages
    assert not host.exists("/run/system-recipes/defer-host-buildout")
    assert installed_version(host, "passwd") == have


NO_OP_PROBE = """\
import sys
from system_recipes.commands.entry import main
code = main(["fleet-host", "apply"])
loaded = sorted(m for m in sys.modules if m == "zc.buildout" or m.startswith("system_recipes.daemons"))
print("probe:", code, *loaded, file=sys.stderr)
"""


def test_a_no_op_step_imports_neither_zc_buildout_nor_a_validator(ssh, fleet_hosts):
    """A host that has its packages and its host.cfg applied answers from the fast path: its
    packages are read through daemons/packages.py alone (no daemon module's validators, no
    zc.buildout: 0.2-0.4 s on every host of every fleet run)."""
    host, connection = fleet_hosts[1], ssh["host2"]
    text = payload("quiet", 1, packages={"passwd": installed_version(host, "passwd")})
    assert connection.run("apply", text).code == 0
    result = host.run([sys.executable, "-c", NO_OP_PROBE], input=text)
    probe = [line for line in result.stderr.splitlines() if line.startswith("probe:")]
    assert probe == ["probe: 0 system_recipes.daemons system_recipes.daemons.packages"], (
        result.stdout + result.stderr
    )
    assert '"fast_path"' in result.stdout, result.stdout


def test_the_install_command_apt_get_would_run(fleet_hosts):
    """Simulated (apt-get -s) inside a host: a real resolution, nothing installed."""
    script = (
        "import json; from system_recipes.fleet.host.installs import Packages; "
        "p = Packages({'hello': None, 'passwd': None}); "
        "print(json.dumps([p.pending(), p.command(p.pending()), p.ensure(simulate=True)]))"
    )
    result = fleet_hosts[2].run([sys.executable, "-c", script])
    pending, command, ensured = json.loads(result.stdout)
    assert pending == ensured == ["hello"]
    assert command == [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--allow-downgrades",
        "-o",
        "DPkg::Lock::Timeout=600",
        "hello",
    ]
    assert fleet_hosts[2].run(["dpkg-query", "-W", "hello"], check=False).returncode != 0
    assert Packages({"shop": "1.0"}, manager="dnf").command(["shop-1.0"]) == [
        "dnf",
        "install",
        "-y",
        "-q",
        "shop-1.0",
    ]


def test_fleet_host_prints_only_json_lines_on_stdout(fleet_hosts):
    """Whatever the step runs writes to stderr: stdout stays one JSON object per line."""
    result = subprocess.run(
        fleet_hosts[3].command([fleet_hosts.entry_point, "fleet-host", "apply"]),
        input=payload("quiet", 1),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert all(json.loads(line) for line in result.stdout.splitlines())
