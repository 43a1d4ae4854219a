"""`fleet plan` and `fleet apply` on real sshd hosts (tests/support/fleet_hosts.py) when one host
cannot take part: its host key is not the pinned one, its sudo wants a password, its buildout
fails. That host ends in one line naming the cause (the same line in its summary), the exit
status says so, and the other hosts converge (the System of tests/support/fleet_scenarios.py)."""

from __future__ import annotations

import re

from support.fleet_scenarios import System, lines, states

pytest_plugins = ["support.fleet_hosts"]


def said(result, text: str) -> bool:
    """A state line says exactly ``text`` (then only the time it took)."""
    return any(re.fullmatch(re.escape(text) + r"( \([0-9.]+ s\))?", line) for line in lines(result))


def closing_line(result, host: str) -> str:
    """The closing table's line of a host that failed (``  HOST: STATE: DETAIL (log: ...)``)."""
    return next(line for line in lines(result) if line.startswith(f"  {host}: "))


def test_a_host_key_mismatch_is_refused_and_the_others_converge(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "keys")
    pinned = tmp_path / "keys.known_hosts"
    # host1's key pinned for host4: what a reinstalled (or impersonated) host4 looks like
    pinned.write_text(
        pinned.read_text().replace(f"host4 {fleet['host4'].host_key}", f"host4 {fleet[0].host_key}")
    )
    why = (
        f"({fleet['host4'].address}:22) host key mismatch: the host offers "
        f"{fleet['host4'].fingerprint}, not the key pinned for host4 in {pinned} (if the host "
        f"was reinstalled: `system-recipes fleet trust host4 --fingerprint SHA256:... -m "
        f"{system.model}` with the fingerprint read on the host itself)"
    )
    plan = system.fleet_command("plan")
    assert plan.returncode == 3, plan.stdout + plan.stderr
    assert states(plan) == {
        "host1": "pending",
        "host2": "pending",
        "host3": "pending",
        "host4": "refused",
    }
    assert said(plan, f"host4: refused: {why}")

    apply = system.fleet_command("apply")
    assert apply.returncode == 3, apply.stdout + apply.stderr
    assert states(apply) == {
        "host1": "changed",
        "host2": "changed",
        "host3": "changed",
        "host4": "refused",
    }
    assert re.search(r"^apply: 4 hosts, 3 changed, 1 refused \(.*exit 3", apply.stdout, re.M)
    assert closing_line(apply, "host4").startswith(f"  host4: refused: {why} (log: ")
    assert system.summary()["hosts"]["host4"]["state"] == "refused"
    assert not fleet["host4"].exists("/etc/lb/lb.ini")  # nothing reached it
    assert pinned.read_text().count("\n") == 4  # ssh pinned nothing on its own


def test_sudo_that_wants_a_password_is_one_line_naming_the_rule(make_hosts, tmp_path):
    fleet = make_hosts(4)
    db = fleet["host1"]
    db.add_user("deploy", sudo="password", client_key=fleet.client_key)
    with open(fleet.ssh_config) as stream:
        config = stream.read()
    with open(fleet.ssh_config, "w") as stream:  # host1 is reached as deploy, the others as root
        stream.write(f"Host {db.address}\n    User deploy\nHost *\n{config}")
    system = System(tmp_path, fleet, "sudo")
    why = (
        "sudo wants a password for deploy; fleet-host needs this rule in /etc/sudoers.d: "
        f"deploy ALL=(root) NOPASSWD: {fleet.entry_point} fleet-host *"
    )
    plan = system.fleet_command("plan")
    assert plan.returncode == 3, plan.stdout + plan.stderr
    assert states(plan)["host1"] == "failed"
    assert said(plan, f"host1: failed: {why}")
    assert closing_line(plan, "host1").startswith(f"  host1: failed: {why} (log: ")

    apply = system.fleet_command("apply", "--max-fail", "1")
    assert apply.returncode == 3, apply.stdout + apply.stderr
    assert states(apply) == {
        "host1": "failed",
        "host2": "changed",
        "host3": "changed",
        "host4": "changed",
    }
    assert said(apply, f"host1: failed: {why}")
    assert system.summary()["hosts"]["host1"]["state"] == "failed"
    assert not db.exists("/etc/db/db.ini")


def test_a_failing_buildout_is_one_line_with_one_error_prefix(make_hosts, tmp_path):
    """The buildout's own error line starts with "Error:": the operator sees it once."""
    fleet = make_hosts(4)
    system = System(
        tmp_path,
        fleet,
        "broken",
        extra='\n[services.app.settings.app-config]\nrestart = "sysv flaky"\n',
    )
    # on host2 a running service whose restart fails (host3 has no such service: skipped)
    fleet["host2"].run(
        "printf '#!/bin/sh\\ncase $1 in status) exit 0;; "
        "*) echo flaky: cannot restart >&2; exit 1;; esac\\n' > /etc/init.d/flaky && "
        "chmod 0755 /etc/init.d/flaky"
    )
    apply = system.fleet_command("apply", "--max-fail", "1")
    assert apply.returncode == 3, apply.stdout + apply.stderr
    assert "Error:" not in apply.stdout
    why = (
        "configuration written, but reloading failed: /etc/init.d/flaky restart exited 1: "
        "flaky: cannot restart"
    )
    assert said(apply, f"host2: failed: {why}"), apply.stdout
    # host2's app instance stays down: host3's waits for it (max-unavailable 1), host4 goes on
    assert states(apply) == {
        "host1": "changed",
        "host2": "failed",
        "host3": "not started",
        "host4": "changed",
    }
    assert closing_line(apply, "host2").startswith(f"  host2: failed: {why} (log: ")
    with open(system.summary()["hosts"]["host2"]["log"]) as stream:
        log = stream.read()
    # fleet-host's own stderr line: one prefix
    assert f"Error: {why}\n" in log and "Error: Error:" not in log
