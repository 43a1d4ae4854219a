"""The main job, live: web1's profile against the installed shop RPM, with a real supervisord
running the application and a real NRPE answering its health check (private mount namespace,
real /etc, /var, /run paths)."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from support.daemons import CONFIG, ask, ctl, running_pid
from support.host import Host
from support.markers import needs
from support.net import free_port, wait_port
from support.paths import REPO
from support.results import ok, said
from support.rpmbuild import RPM_OVERLAYS, rpm_install
from support.sandbox import Sandbox

WEB1 = os.path.join(REPO, "profiles", "hosts", "web1.cfg")
PROGRAM = "/etc/supervisor/conf.d/shop.conf"
MANAGED_TOPS = (
    "/etc/shop",
    "/etc/supervisor/conf.d",
    "/etc/logrotate.d",
    "/etc/cron.d",
    "/etc/nagios/nrpe.d",
    "/etc/systemd/system",
)


def pids_of_namespace(sandbox, program: str) -> list[int]:
    found = []
    for pid in sandbox.processes():
        try:
            with open(f"/proc/{pid}/comm") as stream:
                if stream.read().strip() == program:
                    found.append(pid)
        except OSError:
            continue
    return found


class Web1:
    """web1 on a free port, in a sandbox with the shop RPM installed, daemons started by PID."""

    def __init__(self, box: Sandbox, directory: str):
        self.host = Host(box, directory)
        self.box = box
        self.port = free_port()
        self.nrpe_port = free_port()
        self.extra = ""

    def configure(self, extra: str = "") -> None:
        self.extra = extra
        self.host.write(
            f"[buildout]\nextends = {WEB1}\n[shop-config]\nport = {self.port}\n" + extra
        )

    def start_supervisord(self) -> None:
        self.box.run(["supervisord", "-c", CONFIG], check=True, timeout=60)
        deadline = time.monotonic() + 10
        while ctl(self.box, "pid").returncode and time.monotonic() < deadline:
            time.sleep(0.2)

    def start_nrpe(self) -> None:
        self.box.run(
            f"sed -i 's/^server_port=.*/server_port={self.nrpe_port}/' "
            "/etc/nagios/nrpe.cfg && install -d -o nagios -g nagios /run/nagios",
            check=True,
        )
        self.box.run(["/usr/sbin/nrpe", "-c", "/etc/nagios/nrpe.cfg", "-d"], check=True)
        wait_port(self.nrpe_port)

    def managed(self) -> dict:
        return {path: entry for top in MANAGED_TOPS for path, entry in self.host.tree(top).items()}


@pytest.fixture
@needs("sandbox")
def web1(tmp_path, example_rpms):
    with Sandbox(overlays=RPM_OVERLAYS) as box:
        rpm_install(box, example_rpms("1.0"))
        host = Web1(box, str(tmp_path))
        host.example_rpms = example_rpms
        host.configure()
        try:
            yield host
        finally:
            for program in ("supervisord", "nrpe", "shop-server", "python3"):
                for pid in pids_of_namespace(box, program):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


def mode_and_owner(entry: tuple) -> tuple:
    return entry[1:4]


@pytest.mark.daemon
def test_fresh_host_runs_the_app_under_supervisor_and_nrpe_checks_its_health(web1):
    host = web1.host
    web1.start_supervisord()
    web1.start_nrpe()
    out = ok(host.buildout()).stdout
    for part in (
        "shop-deployment",
        "shop-config",
        "shop-supervisor",
        "shop-logrotate",
        "shop-cron",
        "shop-nrpe",
    ):
        assert said(out, part, "created"), (part, out)
    assert "supervisor (shop)" in out and "nrpe" in out, out

    # every file in place, with the owner and mode etc-examples/web1.tree records
    with open(os.path.join(REPO, "etc-examples", "web1.tree")) as stream:
        expected = [line.split() for line in stream if line.strip()]
    assert len(expected) > 10
    for mode, owner, path in expected:
        st = os.lstat(host.path(path.rstrip("/") or "/"))
        names = f"{_name(host, 'passwd', st.st_uid)}:{_name(host, 'group', st.st_gid)}"
        assert (f"{st.st_mode & 0o7777:04o}", names) == (mode, owner), path

    # the application runs as its user under supervisord, and NRPE says it is healthy
    pid = running_pid(web1.box, "shop")
    with open(f"/proc/{pid}/status") as stream:
        uid = int(re.search(r"^Uid:\s+(\d+)", stream.read(), re.M).group(1))
    assert _name(host, "passwd", uid) == "shop"
    wait_port(web1.port)
    code, text = 1, ""
    deadline = time.monotonic() + 15
    while code and time.monotonic() < deadline:
        code, text = ask(web1.box, web1.nrpe_port, "check_shop_http")
        time.sleep(0.3)
    assert code == 0 and "HTTP OK" in text, text

    # a no-op re-run writes nothing and reloads nothing
    before = web1.managed()
    out = ok(host.buildout()).stdout
    assert "system-recipes: nothing to do: " in out, out  # the fast path
    out = ok(host.buildout("system-recipes:fast-path=off")).stdout  # a full run
    assert "0 created, 0 updated, 0 removed" in out and "reloads: none" in out, out
    assert web1.managed() == before
    assert running_pid(web1.box, "shop") == pid
    assert host.plan().returncode == 0


def _name(host, table: str, number: int) -> str:
    with open(host.path(f"/etc/{table}")) as stream:
        for line in stream:
            fields = line.split(":")
            if int(fields[2]) == number:
                return fields[0]
    return str(number)


@pytest.mark.daemon
def test_switching_supervisor_to_systemd_in_one_section(web1):
    host = web1.host
    web1.start_supervisord()
    ok(host.buildout())
    pid = running_pid(web1.box, "shop")
    before = web1.managed()
    web1.configure("[shop]\nrun = systemd\n")
    planned = host.plan()
    assert planned.returncode == 2 and "remove /etc/supervisor/conf.d/shop.conf" in planned.stdout
    out = ok(host.buildout()).stdout
    assert said(out, "shop-supervisor", "removed") and said(out, "shop-runscript", "created")
    assert "supervisor: shop: removed process group" in out, out
    assert "no such process" in ctl(web1.box, "status", "shop").stdout.lower()
    assert not os.path.exists(f"/proc/{pid}")
    unit = host.read("/etc/systemd/system/shop.service")
    assert "ExecStart=/opt/shop/bin/shop-server --config /etc/shop/shop.ini" in unit
    assert "User=shop" in unit
    after = web1.managed()
    untouched = {p for p in before if not p.startswith(("/etc/supervisor", "/etc/systemd"))}
    assert {p: after[p] for p in untouched} == {p: before[p] for p in untouched}
    new = set(after) - set(before)
    assert "/etc/systemd/system/shop.service" in new
    assert all(p.startswith("/etc/systemd/system") for p in new), new


def test_swap_one_option_and_drop_one_part(web1):
    host = web1.host
    ok(host.buildout())
    before = web1.managed()
    web1.configure("[shop-logrotate]\nrotate = 7\n")
    out = ok(host.buildout()).stdout
    assert said(out, "shop-logrotate", "updated") and "1 updated" in out, out
    after = web1.managed()
    assert {p for p in before if before[p] != after.get(p)} == {"/etc/logrotate.d/shop"}
    assert "rotate 7" in host.read("/etc/logrotate.d/shop")

    # a file the tool never wrote, in a directory it writes to
    mine = host.path("/etc/cron.d/local-backup")
    with open(mine, "w") as stream:
        stream.write("0 1 * * * root true\n")
    web1.configure("[shop-logrotate]\nrotate = 7\n[shop]\ncron =\n")
    out = ok(host.buildout()).stdout
    assert said(out, "shop-cron", "removed"), out
    assert not host.exists("/etc/cron.d/shop")
    assert open(mine).read() == "0 1 * * * root true\n"
    gone = set(web1.managed()) ^ set(after)
    assert gone == {"/etc/cron.d/shop", "/etc/cron.d/local-backup"}, gone


@pytest.mark.daemon
def test_config_or_package_change_restarts_the_program_once(web1):
    host = web1.host
    web1.start_supervisord()
    ok(host.buildout())
    pid = running_pid(web1.box, "shop")
    # its own config file changes: one restart, after the commit
    web1.configure("[shop-config]\nhost = 0.0.0.0\n")
    out = ok(host.buildout()).stdout
    assert said(out, "shop-config", "updated") and "supervisor-restart (shop)" in out, out
    restarted = running_pid(web1.box, "shop")
    assert restarted != pid and not os.path.exists(f"/proc/{pid}")
    # an RPM upgrade: the version recorded in the books changes, the program restarts
    rpm_install(web1.box, web1.example_rpms("1.1"), upgrade=True)
    planned = host.plan()
    assert planned.returncode == 2 and "shop 1.1-1 (was shop 1.0-1)" in planned.stdout, (
        planned.stdout
    )
    out = ok(host.buildout()).stdout
    assert said(out, "shop-package", "updated") and "supervisor-restart (shop)" in out, out
    upgraded = running_pid(web1.box, "shop")
    assert upgraded != restarted
    # a no-op restarts nothing
    out = ok(host.buildout()).stdout
    assert "system-recipes: nothing to do: " in out, out  # the fast path
    out = ok(host.buildout("system-recipes:fast-path=off")).stdout  # a full run
    assert "reloads: none" in out and running_pid(web1.box, "shop") == upgraded
    # turned off: the config changes, the program keeps running as it was
    web1.configure("[shop]\nrestart-on-change = false\n[shop-config]\nhost = 127.0.0.2\n")
    out = ok(host.buildout()).stdout
    assert said(out, "shop-config", "updated") and "restart" not in out.split("reloads:")[1]
    assert running_pid(web1.box, "shop") == upgraded


def test_a_reload_whose_daemon_is_not_running_is_reported_skipped(web1):
    host = web1.host
    out = ok(host.buildout()).stdout  # no supervisord, no nrpe
    reloads = out.split("reloads:")[1]
    assert "supervisor (shop) skipped (supervisord is not running" in reloads, out
    assert "nrpe" in reloads and "skipped (not running" in reloads, out
    assert "supervisor (shop)," not in reloads
