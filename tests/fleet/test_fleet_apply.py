"""`system-recipes fleet plan|apply|status` on real sshd hosts (tests/support/fleet_hosts.py): small
systems of template files and deployments, applied in waves along their links; a no-op apply
rewrites nothing; one service changed changes only its hosts, one at a time; a host down, a
failing host, a stale checkout, Ctrl-C and a host that cuts the controller off each end as
documented (docs/systems.md, "fleet apply")."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from support.fleet_scenarios import MODEL, ROLES, System, lines, states, tree
from support.paths import REPO, SYSTEM_RECIPES

from system_recipes.fleet.compile.prepare import assign_waves, prepare, removed_checks
from system_recipes.fleet.controller.orchestrate import failure_limit

pytest_plugins = ["support.fleet_hosts"]


def position(result, line_start: str) -> int:
    return next(i for i, line in enumerate(lines(result)) if line.startswith(line_start))


def stat(host, path: str) -> tuple[int, int]:
    info = os.stat(host.path(path))
    return info.st_ino, info.st_mtime_ns


def test_apply_in_waves_then_a_no_op_then_one_service_changed(fleet_hosts, tmp_path):
    system = System(tmp_path, fleet_hosts, "waves")
    host1, host2, host3, host4 = fleet_hosts
    plan = system.fleet_command("plan")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert states(plan) == {h: "pending" for h in ("host1", "host2", "host3", "host4")}

    started = time.monotonic()
    first = system.fleet_command("apply")
    first_seconds = time.monotonic() - started
    assert first.returncode == 0, first.stdout + first.stderr
    assert states(first) == {h: "changed" for h in ("host1", "host2", "host3", "host4")}
    # the waves follow the links: db, then both app servers one at a time, then lb
    assert position(first, "host1: changed") < position(first, "host2: applying")
    assert position(first, "host2: changed") < position(first, "host3: applying")
    assert position(first, "host3: changed") < position(first, "host4: applying")
    assert "host2: checking: check_app_config, check_app_healthy" in first.stdout
    assert lines(first)[-1].startswith("apply: 4 hosts, 4 changed (")
    assert "revision 1); exit 0; logs in " in lines(first)[-1]
    assert host2.read("/etc/app/app.ini") == (
        f"[app]\nport = 21000\ndb = {host1.address}:5400\ngreeting = hello\n"
    )
    assert host4.read("/etc/lb/lb.ini") == (
        f"[lb]\nport = 8080\nbackends = {host2.address} {host3.address} port 21000\n"
    )
    summary = system.summary()
    assert summary["exit"] == 0 and summary["revision"] == 1
    assert [summary["hosts"][h]["wave"] for h in ("host1", "host2", "host3", "host4")] == [
        1,
        2,
        2,
        3,
    ]
    with open(summary["hosts"]["host1"]["log"]) as stream:
        log = stream.read()
    assert '{"step": "buildout", "result": "ok"' in log and "# check check_db_config: exit 0" in log
    with open(system.model.replace(".toml", ".lock.toml")) as stream:
        assert "revision = 1\n" in stream.read()

    before = {
        host.name: stat(host, path)
        for host, path in (
            (host1, "/etc/db/db.ini"),
            (host2, "/etc/app/app.ini"),
            (host4, "/etc/lb/lb.ini"),
        )
    }
    started = time.monotonic()
    again = system.fleet_command("apply")
    noop_seconds = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    assert states(again) == {h: "unchanged" for h in ("host1", "host2", "host3", "host4")}
    assert {
        host.name: stat(host, path)
        for host, path in (
            (host1, "/etc/db/db.ini"),
            (host2, "/etc/app/app.ini"),
            (host4, "/etc/lb/lb.ini"),
        )
    } == before
    assert system.fleet_command("plan").returncode == 0
    status = system.fleet_command("status")
    assert status.returncode == 0, status.stdout
    assert "host3: in sync: revision 1" in status.stdout

    checkout = tmp_path / "older-checkout"  # as it was before the change below
    shutil.copytree(tmp_path, checkout, ignore=shutil.ignore_patterns("profiles", ".fleet"))

    # one option of one service: only the app hosts change, one at a time (max-unavailable 1)
    system.edit(
        'role = "roles/app.cfg"\n',
        'role = "roles/app.cfg"\nsettings = { app-config = { greeting = "bonjour" } }\n',
    )
    behind = system.fleet_command("status")
    assert behind.returncode == 2
    assert "host1: behind: revision 1 applied, 2 is current" in behind.stdout
    diff = system.fleet_command("plan", "--diff")
    assert diff.returncode == 2
    assert states(diff) == {
        "host1": "in sync",
        "host2": "pending",
        "host3": "pending",
        "host4": "in sync",
    }
    assert "-greeting = hello\n+greeting = bonjour" in diff.stdout
    assert re.search(r"^host3: diff\n--- a/etc/app/app.ini\n", diff.stdout, re.M)
    started = time.monotonic()
    change = system.fleet_command("apply")
    change_seconds = time.monotonic() - started
    assert change.returncode == 0, change.stdout + change.stderr
    assert states(change) == {
        "host1": "unchanged",
        "host2": "changed",
        "host3": "changed",
        "host4": "unchanged",
    }
    assert (
        position(change, "host1: unchanged")
        < position(change, "host2: applying")
        < position(change, "host2: changed")
        < position(change, "host3: applying")
        < position(change, "host3: changed")
        < position(change, "host4: applying")
    )
    assert "greeting = bonjour" in host3.read("/etc/app/app.ini")
    assert stat(host1, "/etc/db/db.ini") == before["host1"]
    assert system.fleet_command("status").returncode == 0

    # drift: a file edited by hand on a host
    with open(host4.path("/etc/lb/lb.ini"), "a") as stream:
        stream.write("# edited\n")
    drifted = system.fleet_command("status")
    assert drifted.returncode == 2 and "host4: drifted: /etc/lb/lb.ini" in drifted.stdout
    # a checkout that is behind cannot undo what a newer one applied
    args = system.args("apply")
    args[args.index("-m") + 1] = str(checkout / "waves.toml")
    older = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert older.returncode == 1, older.stdout + older.stderr
    assert (
        "host3: refused: revision 2 applied, newer than this model's 1 (a stale checkout? "
        "update it; --force applies this one anyway)" in older.stdout
    )
    assert states(older)["host1"] == "refused"
    assert "greeting = bonjour" in host3.read("/etc/app/app.ini")
    print(
        f"timings: first apply {first_seconds:.2f} s, no-op apply {noop_seconds:.2f} s, "
        f"one change {change_seconds:.2f} s"
    )


def test_a_plan_leaves_a_host_never_applied_as_it_was(make_hosts, tmp_path):
    """No /etc/system-recipes/MODEL/, no state directory, no lock file: a plan changes nothing
    on a host, its state included (fleet plan, and the export's --check, through fleet-host
    plan)."""
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "untouched")
    before = {host.name: tree(host) for host in fleet}
    plan = system.fleet_command("plan")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert states(plan) == {h: "pending" for h in ("host1", "host2", "host3", "host4")}
    for host in fleet:
        assert not host.exists("/etc/system-recipes")
        assert not host.exists("/var/lib/system-recipes")
        assert tree(host) == before[host.name], host.name
    # once applied, a plan of a new host.cfg leaves the kept one and the state as they are
    assert system.fleet_command("apply").returncode == 0
    system.edit(
        'role = "roles/app.cfg"\n',
        'role = "roles/app.cfg"\nsettings = { app-config = { greeting = "hi" } }\n',
    )
    applied = {host.name: tree(host) for host in fleet}
    again = system.fleet_command("plan")
    assert again.returncode == 2, again.stdout + again.stderr
    assert states(again)["host2"] == "pending"
    for host in fleet:
        assert tree(host) == applied[host.name], host.name


def test_apply_reports_drift_and_a_run_that_applied_nothing_keeps_the_lock(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "drift")
    assert system.fleet_command("apply").returncode == 0
    lock = system.model.replace(".toml", ".lock.toml")
    with open(lock, "rb") as stream:
        applied = stream.read()
    assert b"revision = 1\n" in applied
    # a hand edit and nothing else to change: apply says so as plan does, and exits 2 as
    # status does (the host is not as the model says)
    with open(fleet["host4"].path("/etc/lb/lb.ini"), "a") as stream:
        stream.write("# edited by hand\n")
    plan = system.fleet_command("plan")
    assert "host4: pending: 0 file changes; drift /etc/lb/lb.ini" in plan.stdout
    drifted = system.fleet_command("apply")
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    assert re.search(
        r"^host4: unchanged: drift /etc/lb/lb.ini \(left as edited\) \(", drifted.stdout, re.M
    ), drifted.stdout
    assert states(drifted) == {h: "unchanged" for h in ("host1", "host2", "host3", "host4")}
    assert "# edited by hand" in fleet["host4"].read("/etc/lb/lb.ini")
    status = system.fleet_command("status")
    assert status.returncode == 2 and "host4: drifted: /etc/lb/lb.ini" in status.stdout

    # a new revision, and every host down: nothing applied, so the lock stays as it was
    system.edit(
        'role = "roles/app.cfg"\n',
        'role = "roles/app.cfg"\nsettings = { app-config = { greeting = "hi" } }\n',
    )
    for host in fleet:
        host.stop_sshd()
    down = system.fleet_command("apply")
    assert down.returncode == 3, down.stdout + down.stderr
    assert states(down) == {h: "unreachable" for h in ("host1", "host2", "host3", "host4")}
    assert "written into the lock" not in down.stdout
    with open(lock, "rb") as stream:
        assert stream.read() == applied


def test_a_host_down_is_unreachable_and_the_others_converge(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "down")
    fleet["host4"].stop_sshd()
    plan = system.fleet_command("plan")
    assert plan.returncode == 3, plan.stdout + plan.stderr
    assert states(plan)["host4"] == "unreachable"
    apply = system.fleet_command("apply")
    assert apply.returncode == 3, apply.stdout + apply.stderr
    assert states(apply) == {
        "host1": "changed",
        "host2": "changed",
        "host3": "changed",
        "host4": "unreachable",
    }
    assert re.search(r"^apply: 4 hosts, 3 changed, 1 unreachable \(.*exit 3", apply.stdout, re.M)
    assert re.search(
        r"^  host4: unreachable: \(.*\) ssh: connect to host .* "
        r"Connection refused \(log: .*/host4.log\)$",
        apply.stdout,
        re.M,
    )
    assert system.summary()["hosts"]["host4"]["state"] == "unreachable"
    status = system.fleet_command("status")
    assert status.returncode == 3 and "host1: in sync" in status.stdout


def test_max_fail_stops_new_hosts_and_lists_them(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "maxfail")
    system.edit('links = ["db"]\n', 'links = ["db"]\nmax-unavailable = 2\n')
    fleet["host2"].run("touch /etc/app-broken")  # its check fails
    apply = system.fleet_command("apply", "--check-timeout", "1", "--confirm-timeout", "0")
    assert apply.returncode == 4, apply.stdout + apply.stderr
    # both app servers were in flight: host3 finished its own transaction
    assert states(apply) == {
        "host1": "changed",
        "host2": "failed",
        "host3": "changed",
        "host4": "not started",
    }
    assert "host2: failed: check check_app_healthy still fails after 1 s (exit 1: )" in apply.stdout
    assert "stopped: 1 failed, more than --max-fail 0" in lines(apply)[-3]
    assert lines(apply)[-1] == "  not started: host4"
    assert not fleet["host4"].exists("/etc/lb/lb.ini")
    assert system.summary()["stopped"] == "1 failed, more than --max-fail 0"
    tolerated = system.fleet_command("apply", "--check-timeout", "1", "--max-fail", "50%")
    assert tolerated.returncode == 3, tolerated.stdout  # 2 of 4 may fail: host4 goes on
    assert states(tolerated) == {
        "host1": "unchanged",
        "host2": "failed",
        "host3": "unchanged",
        "host4": "changed",
    }


def test_ctrl_c_lets_the_hosts_in_flight_finish_and_exits_130(make_hosts, tmp_path):
    fleet = make_hosts(4)
    system = System(
        tmp_path,
        fleet,
        "sigint",
        extra=(
            '\n[services.app.settings.app-nrpe]\nchecks = "check_app_config /usr/bin/sleep 2"\n'
        ),
    )
    process = subprocess.Popen(
        system.args("apply", "--confirm-timeout", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in process.stdout:
        seen.append(line.rstrip("\n"))
        if line.startswith("host2: checking"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=60)
    seen += out.splitlines()
    assert process.returncode == 130, "\n".join(seen) + err
    assert (
        "interrupted: no new host starts; the hosts in flight finish their own transaction" in seen
    )
    assert "host2: changed: 8 files" in "\n".join(seen)  # it finished, checks and all
    assert seen[-1] == "  not started: host3, host4"
    assert not fleet["host3"].exists("/etc/app/app.ini")


def test_a_model_error_contacts_no_host(tmp_path):
    """Without a lock (never compiled), the allocation would change: one line, exit 1."""
    (tmp_path / "x.toml").write_text(
        MODEL.format(
            name="x", profiles=str(tmp_path), **{f"host{i}": f"192.0.2.{i}" for i in range(1, 5)}
        )
    )
    result = subprocess.run(
        [SYSTEM_RECIPES, "fleet", "apply", "-m", str(tmp_path / "x.toml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: {tmp_path}/x.lock.toml: the lock would change (app: port "
        "auto -> 21000 and 6 more); `system-recipes fleet compile -m "
        "x.toml` writes it for review, or pass --allow-moves\n"
    )
    bad = subprocess.run(
        [SYSTEM_RECIPES, "fleet", "apply", "-m", str(tmp_path / "x.toml"), "--max-fail", "lots"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stderr == (
        "Error: fleet: --max-fail: 'lots' (expected a number of hosts such "
        "as 2, or a share such as 10%)\n"
    )


@pytest.mark.parametrize(
    "text, hosts, limit", [("0", 10, 0), ("3", 10, 3), ("25%", 10, 2), ("100%", 4, 4)]
)
def test_failure_limit(text, hosts, limit):
    assert failure_limit(text, hosts) == limit


def test_waves_follow_the_links_and_the_monitoring_host_goes_last_or_first(tmp_path):
    profiles = tmp_path / "profiles"
    (profiles / "roles").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "profiles", "base.cfg"), profiles)
    for role, text in ROLES.items():
        (profiles / "roles" / f"{role}.cfg").write_text(text)
    model = tmp_path / "m.toml"
    model.write_text(
        MODEL.format(
            name="m", profiles=profiles, **{f"host{i}": f"192.0.2.{i}" for i in range(1, 5)}
        )
        + ('[hosts.mon]\naddress = "192.0.2.9"\nmemory = "1G"\n\n[monitoring]\nhost = "mon"\n')
    )
    assert (
        subprocess.run(
            [SYSTEM_RECIPES, "fleet", "compile", "-m", str(model), "--profiles", str(profiles)],
            capture_output=True,
        ).returncode
        == 0
    )
    system = prepare(str(model), str(profiles))
    assert assign_waves(system) == [["host1"], ["host2", "host3"], ["host4"], ["mon"]]
    assert assign_waves(system, monitoring_first=True) == [
        ["mon"],
        ["host1"],
        ["host2", "host3"],
        ["host4"],
    ]
    new = system.hosts["mon"].config
    assert "host2 check_app_healthy app.1 check_app_healthy" in new
    assert removed_checks(new, new) == []
    assert removed_checks(None, new) == []
    old = new.replace(
        "check_db_config db.1 check_db_config",
        "check_db_config db.1 check_db_config\n    host1 check_gone db.1 check_gone",
    )
    assert removed_checks(old, new) == ["host1 check_gone db.1 check_gone"]
    assert system.revision == 1 and system.hosts["host2"].checks == [
        "check_app_config",
        "check_app_healthy",
    ]


CONFIRM_MODEL = """\
[system]
name = "cut"
profiles = "{profiles}"

[hosts.host1]
address = "{address}"
memory = "1G"

[services.motd]
role = "roles/motd.cfg"
"""

# a change that cuts the controller off: sshd reads a drop-in refusing root, and is reloaded
DENY = """\
[buildout]
parts = sshd-deny

[sshd-deny]
recipe = system_recipes:template
path = /etc/ssh/sshd_config.d/deny.conf
text = DenyUsers root
on-change = {reload}
"""


def test_a_change_that_cuts_the_controller_off_is_rolled_back_by_the_host(make_hosts, tmp_path):
    fleet = make_hosts(1, names=["host1"])
    host = fleet["host1"]
    # sshd reads drop-ins (as Debian's does); the reload is a SIGHUP to this host's listener
    host.run(
        "sed -i '1i Include /etc/ssh/sshd_config.d/*.conf' /etc/ssh/sshd_config && "
        f"mkdir -p /etc/ssh/sshd_config.d && echo {host.pid} > /run/test-sshd.pid && "
        f"kill -HUP {host.pid}"
    )
    reload = tmp_path / "reload-sshd"
    reload.write_text("#!/bin/sh\nkill -HUP $(cat /run/test-sshd.pid)\n")
    reload.chmod(0o755)
    profiles = tmp_path / "profiles"
    (profiles / "roles").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "profiles", "base.cfg"), profiles)
    (profiles / "roles" / "motd.cfg").write_text(
        "[buildout]\nparts = motd\n\n[motd]\nrecipe = system_recipes:template\n"
        "path = /etc/motd-fleet\ntext = managed by the fleet\n"
    )
    (profiles / "roles" / "deny.cfg").write_text(DENY.format(reload=reload))
    model = tmp_path / "cut.toml"
    model.write_text(CONFIRM_MODEL.format(profiles=profiles, address=host.address))
    shutil.copy(fleet.known_hosts, tmp_path / "cut.known_hosts")

    def fleet_command(action, *extra):
        args = [
            SYSTEM_RECIPES,
            "fleet",
            action,
            "-m",
            str(model),
            "--profiles",
            str(profiles),
            "-F",
            fleet.ssh_config,
            "--entry-point",
            fleet.entry_point,
            *extra,
        ]
        return subprocess.run(args, capture_output=True, text=True, timeout=120)

    assert (
        subprocess.run(
            [SYSTEM_RECIPES, "fleet", "compile", "-m", str(model), "--profiles", str(profiles)],
            capture_output=True,
        ).returncode
        == 0
    )
    first = fleet_command("apply", "--confirm-timeout", "5")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "host1: confirming: over a new connection" in first.stdout  # confirmed, so kept
    assert not host.exists("/var/lib/system-recipes/fleet/cut.confirm.json")
    before = host.read("/etc/ssh/sshd_config")

    with open(model, "a") as stream:
        stream.write('\n[services.deny]\nrole = "roles/deny.cfg"\n')
    assert (
        subprocess.run(
            [SYSTEM_RECIPES, "fleet", "compile", "-m", str(model), "--profiles", str(profiles)],
            capture_output=True,
        ).returncode
        == 0
    )
    started = time.monotonic()
    cut = fleet_command("apply", "--confirm-timeout", "3")
    assert cut.returncode == 3, cut.stdout + cut.stderr
    assert re.search(
        r"^host1: failed: not confirmed \(.*ssh login as root refused.*\); the host "
        r"rolls back by itself within 3 s",
        cut.stdout,
        re.M,
    ), cut.stdout
    assert host.exists("/etc/ssh/sshd_config.d/deny.conf")  # applied, and unconfirmed
    login = [
        "ssh",
        "-F",
        fleet.ssh_config,
        "-o",
        f"UserKnownHostsFile={fleet.known_hosts}",
        "-o",
        "HostKeyAlias=host1",
        "-o",
        "BatchMode=yes",
        host.address,
        "true",
    ]
    while subprocess.run(login, capture_output=True).returncode != 0:
        assert time.monotonic() - started < 30, "the host did not come back"
        time.sleep(0.2)
    back = time.monotonic() - started
    assert not host.exists("/etc/ssh/sshd_config.d/deny.conf")
    assert host.read("/etc/ssh/sshd_config") == before
    assert host.read("/etc/motd-fleet") == "managed by the fleet\n"
    deadline = time.monotonic() + 10  # the watchdog records after its reload
    while host.exists("/var/lib/system-recipes/fleet/cut.confirm.json"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    record = json.loads(host.read("/var/lib/system-recipes/fleet/cut.json"))
    assert record["applied"]["revision"] == 1
    assert record["last"]["revision"] == 2 and record["last"]["result"] == "rolled-back"
    assert record["last"]["error"] == "no confirmation within 3 s: rolled back"
    assert "motd" in host.read("/etc/system-recipes/cut/host.cfg")
    assert "sshd-deny" not in host.read("/etc/system-recipes/cut/host.cfg")
    status = fleet_command("status")
    assert status.returncode == 2
    assert "host1: behind: revision 1 applied, 2 is current" in status.stdout
    print(f"back {back:.1f} s after the apply started")


def test_on_a_terminal_a_live_line_per_host_and_the_counters(make_hosts, tmp_path):
    import pty
    import select

    fleet = make_hosts(4)
    system = System(tmp_path, fleet, "live")
    master, slave = pty.openpty()
    process = subprocess.Popen(
        system.args("apply", "--confirm-timeout", "0"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(slave)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        try:
            data = os.read(master, 65536) if ready else b""
        except OSError:  # the terminal's other side closed
            break
        if ready and not data:
            break
        output += data
        if not ready and process.poll() is not None:
            break
    os.close(master)
    assert process.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode("utf-8", "replace"))
    final = text[text.rindex("host   wave") :]  # the last frame of the live table
    assert re.search(r"^host1\s+1\s+changed\s+8 files\s+[0-9.]+s\s*$", final, re.M), final
    assert re.search(r"^host4\s+3\s+changed\s+7 files", final, re.M)
    assert re.search(r"^4 hosts, 0 running, 0 waiting, 4 changed \(", final, re.M)
    assert "host1: applying" not in text  # no per-change lines on a terminal
    assert re.search(r"^apply: 4 hosts, 4 changed \(.*exit 0; logs in ", text, re.M)
